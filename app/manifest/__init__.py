"""Scanning, parallel SHA-256 hashing, the canonical manifest, and Croissant/BagIt exports."""
