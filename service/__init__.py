"""tdm1-cds: a CDS Hooks 2.0.1 service for trastuzumab emtansine (T-DM1)."""

__version__ = "0.1.0"
