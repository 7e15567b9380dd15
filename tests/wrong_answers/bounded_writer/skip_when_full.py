"""Drops a frame when the buffer is above the high-water mark, instead of waiting."""


async def write_frames(writer, payloads):
    written = 0
    _, high = writer.transport.get_write_buffer_limits()
    for payload in payloads:
        if writer.transport.get_write_buffer_size() > high:
            continue
        frame = encode_frame(payload)
        writer.write(frame)
        written += len(frame)
    return written
