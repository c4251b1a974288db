import asyncio  # noqa: F401
import decimal  # noqa: F401
import email  # noqa: F401
import json  # noqa: F401
import sqlite3  # noqa: F401

print("ready")
