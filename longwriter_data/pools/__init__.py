"""Instructions: sources streamed, selected, mixed and drawn; synthesized when the pools run short; previewed."""
