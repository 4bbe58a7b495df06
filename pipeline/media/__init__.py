"""pipeline/media"""
