"""Storage layer: the only place SQL lives. Functions take a connection and return frozen dataclasses."""
