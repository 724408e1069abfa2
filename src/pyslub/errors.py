"""pyslub's exception types."""


class SlabError(ValueError):
    """An address or request the allocator refuses; the message names what was wrong."""
