"""Kakehashi internet relay: the text-only tier on the インターネット接続系 segment.

It never opens a connection into LGWAN; the LGWAN server dials out to its queue port.
"""
