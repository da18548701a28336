"""Figures drawn from stored studies (matplotlib, PNG)."""
