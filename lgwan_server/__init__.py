"""Kakehashi LGWAN server: the system of record on the LGWAN接続系 segment."""
