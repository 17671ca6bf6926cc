//! APDU scripts: a superset of pcsc-tools `scriptor` with expectations, variables, captures,
//! channels and secret redaction; a runner and transcripts.
