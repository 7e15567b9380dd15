"""Awaits drain() only after every 64 frames, so up to 64 frames pile up above the mark."""


async def write_frames(writer, payloads):
    written = 0
    for index, payload in enumerate(payloads):
        frame = encode_frame(payload)
        writer.write(frame)
        written += len(frame)
        if index % 64 == 63:
            await writer.drain()
    await writer.drain()
    return written
