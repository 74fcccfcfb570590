"""HJ 212 (2017 and HJ/T 212-2005) packet codec."""
from ingot.monitoring.hj212.codec import (
    MAX_SEGMENT, TOLERANCES, HJ212Error, Packet, PollutantValues, Reassembler, build_cp, crc_hj212, crc_modbus,
    decode, decode_segment, encode, encode_segment, flag_for, format_qn, format_time, frame, parse_time,
)

__all__ = [
    "MAX_SEGMENT", "TOLERANCES", "HJ212Error", "Packet", "PollutantValues", "Reassembler", "build_cp", "crc_hj212",
    "crc_modbus", "decode", "decode_segment", "encode", "encode_segment", "flag_for", "format_qn", "format_time",
    "frame", "parse_time",
]
