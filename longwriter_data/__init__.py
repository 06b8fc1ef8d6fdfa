"""longwriter-data: build long-output SFT datasets the LongWriter way (AgentWrite: plan, then write in order)."""

__version__ = "0.1.0"
