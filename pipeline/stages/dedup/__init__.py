"""pipeline/stages/dedup"""
