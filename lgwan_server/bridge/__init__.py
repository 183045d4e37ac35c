"""The LGWAN side of the narrow signed queue to the internet relay (issue 5).

``outbox``  turns state changes of crossing rooms into envelopes, in the same transaction
``inbox``   applies what the relay sends (guest and phone posts, receipts, enrolments, devices, 安否確認)
``dialler`` opens the link (LGWAN always dials out), authenticates it and streams both ways
``files``   files from guests and phones: only sanitizer-signed rebuilt bytes, re-checked, then posted (issue 3)
"""
