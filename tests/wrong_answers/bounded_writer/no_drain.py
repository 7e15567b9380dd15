"""Writes every frame without awaiting drain(), so the buffer grows with everything written."""


async def write_frames(writer, payloads):
    written = 0
    for payload in payloads:
        frame = encode_frame(payload)
        writer.write(frame)
        written += len(frame)
    return written
