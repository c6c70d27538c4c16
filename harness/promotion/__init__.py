"""Towards production: the cutover gate against any cluster an inventory names, and the
deployment rehearsed on bare Debian servers."""
