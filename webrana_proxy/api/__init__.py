"""The management JSON API under /api: one module per resource, each exposing ``routes``."""
