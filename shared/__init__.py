"""Kakehashi's common package: limits, safe text, config helpers, logging.

It imports nothing from the tiers so that every tier (and the sanitizer worker) can use it.
"""
