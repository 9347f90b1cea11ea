"""Forwarding: which headers cross, and the streaming upstream client."""
