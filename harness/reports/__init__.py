"""Figures drawn for reports: the one timeline plot chaos and load reports share."""
