"""Writes the payloads without their length prefix, so the reader cannot split them."""


async def write_frames(writer, payloads):
    written = 0
    for payload in payloads:
        writer.write(payload)
        written += len(payload)
        await writer.drain()
    return written
