"""Tools people run on their machines: CLI, VOD emulator, manifest submitter, sample events.

Never part of the SCF package (``make package`` leaves this subpackage out).
"""
