"""SMS PDU decoding (on gsmmodem.pdu, corrected) and multipart reassembly, I/O-free."""
