"""Faults that always heal: containers (Docker), iptables rules in the nodes' own chains,
toxics and disabled links on the fault proxy. `model` holds the faults, `controller` builds
them for one stack, resolves roles, and is the backstop that heals everything."""
