"""pipeline/inspect"""
