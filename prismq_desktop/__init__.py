"""PrismQ Desktop: a desktop task monitor over a Qt-free run engine."""

__version__ = "0.1.0"
APP_NAME = "PrismQ Desktop"
