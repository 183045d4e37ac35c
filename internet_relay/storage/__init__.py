"""All of the relay's SQL. Functions take a connection or the Database and return frozen dataclasses."""
