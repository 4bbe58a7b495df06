"""pipeline/net"""
