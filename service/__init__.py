"""refflow: referral workflow service for rehabilitation clinics."""

__version__ = "0.1.0"
