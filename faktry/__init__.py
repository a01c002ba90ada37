"""faktry kernel: settings, database, tenancy, errors, clock and the command line.

The kernel holds what every other package needs and no business rules.
"""
