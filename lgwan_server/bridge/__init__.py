"""The LGWAN side of the narrow signed queue to the internet relay (issue 5).

``outbox``  turns state changes of crossing rooms into envelopes, in the same transaction
``inbox``   applies what the relay sends (guest and phone posts, receipts, enrolments, devices)
``dialler`` opens the link (LGWAN always dials out), authenticates it and streams both ways
"""
