//! Tally's SIP protocol core.
