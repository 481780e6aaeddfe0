"""The Python app inside the pre-initialized sandbox component (built by endure.sandbox.component).

componentize-py runs this module's top level at build time and snapshots the result, so every
module imported here is already imported when a run starts: a script pays nothing for them.
Only modules reachable from these imports are bundled at all; a script importing anything else
gets ModuleNotFoundError (or finds it on a read-only mount through `sys_path`).

Each run is one call of `run` on a fresh instance of the snapshot. Output goes to the WASI
stdout/stderr, which the host captures with its caps (a script cannot bypass a guest-side cap
by writing to fd 1); the exit status is the return value. This file is also importable on the
host (plain stdlib), but nothing there needs to.
"""

# ruff: noqa: F401  (the imports are the point: they land in the snapshot)
from __future__ import annotations

import abc
import argparse
import array
import ast
import asyncio
import base64
import binascii
import bisect
import builtins
import calendar
import cmath
import codecs
import collections
import collections.abc
import colorsys
import compileall
import configparser
import contextlib
import contextvars
import copy
import cProfile
import csv
import dataclasses
import datetime
import decimal
import difflib
import email
import email.message
import email.mime.multipart
import email.mime.text
import email.parser
import email.policy
import email.utils
import encodings.ascii
import encodings.base64_codec
import encodings.cp1252
import encodings.hex_codec
import encodings.idna
import encodings.latin_1
import encodings.utf_8_sig
import encodings.utf_16
import encodings.utf_32
import enum
import filecmp
import fileinput
import fnmatch
import fractions
import functools
import getopt
import gettext
import glob
import graphlib
import gzip
import hashlib
import heapq
import hmac
import html
import html.parser
import http
import http.client
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import io
import ipaddress
import itertools
import json
import keyword
import linecache
import locale
import logging
import math
import mimetypes
import numbers
import operator
import optparse
import os
import pathlib
import pickle
import platform
import plistlib
import pprint
import pstats
import py_compile
import queue
import quopri
import random
import re
import reprlib
import sched
import secrets
import shlex
import shutil
import sqlite3
import statistics
import string
import struct
import sys
import tarfile
import tempfile
import textwrap
import time
import timeit
import tomllib
import traceback
import types
import typing
import unicodedata
import unittest
import unittest.mock
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
import weakref
import xml.dom.minidom
import xml.etree.ElementTree
import xml.sax
import zipfile
import zlib
import zoneinfo

try:  # the bindings componentize-py generates; imported here so they are in the snapshot
    import wit_world
except ImportError:  # on the host
    wit_world = None

_BASE_PATH = list(sys.path)


def _no_self_pipe(self: object) -> None:
    vars(self).update(_ssock=None, _csock=None)


def _nothing(self: object, *args: object) -> None:
    return None


# asyncio's event loop wakes itself through a socketpair, which WASI does not have (socket
# creation is refused). A guest has one thread and no signals, so nothing needs to wake it.
for _name, _impl in (("_make_self_pipe", _no_self_pipe), ("_close_self_pipe", _nothing), ("_write_to_self", _nothing)):
    setattr(asyncio.selector_events.BaseSelectorEventLoop, _name, _impl)


def _print_exception(e: BaseException) -> None:
    """The traceback of an uncaught exception, without this app's own frame."""
    tb = e.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    try:
        traceback.print_exception(type(e), e, tb, file=sys.stderr)
    except BaseException:  # a broken stderr (cap reached) must not turn into a trap
        pass


def _exit_status(e: SystemExit) -> int:
    """What CPython's own `sys.exit(code)` handling makes of the code."""
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        print(code, file=sys.stderr)
    except BaseException:
        pass
    return 1


class WitWorld:
    """The export of the `python-runner` world (componentize-py looks this class up by name)."""

    def run(self, code: str, args: list[str], sys_path: list[str]) -> int:
        sys.argv = ["main.py", *args]
        sys.path[:] = [*sys_path, *_BASE_PATH]
        random.seed()  # never replay the sequence seeded at build time
        # Tracebacks show the script's lines without a main.py on disk.
        linecache.cache["main.py"] = (len(code), None, code.splitlines(True), "main.py")
        g: dict[str, object] = {"__name__": "__main__", "__builtins__": builtins, "__file__": "main.py"}
        status = 0
        try:
            exec(compile(code, "main.py", "exec"), g)
        except SystemExit as e:
            status = _exit_status(e)
        except BaseException as e:  # an exception escaping `run` would trap the whole instance
            _print_exception(e)
            status = 1
        for s in (sys.stdout, sys.stderr):
            try:
                s.flush()
            except BaseException:
                pass
        return status
