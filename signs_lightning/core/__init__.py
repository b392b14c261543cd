"""What every room builds on: one-line errors, derived random streams, the on-disk cache, and the distributed
protocol (what training set-up and evaluation need from a Lightning strategy)."""
