/// The parts of a recorded HTTP message the report needs, read from the raw
/// payload without copying it: the request line or the status code, and the
/// body length.
///
/// Payloads come from capture files, so nothing here trusts them: a line that
/// does not parse gives nil and the caller counts it as unreadable.
enum HTTPHeadline {
    /// `GET /path?query HTTP/1.1` → ("GET", "/path?query"). The method is
    /// capped at 16 bytes and the target at 2 KiB (longer targets are cut).
    static func requestLine(_ payload: [UInt8]) -> (method: String, target: String)? {
        let end = lineEnd(payload)
        guard let space = payload[0..<end].firstIndex(of: 0x20), space > 0, space <= 16 else { return nil }
        let method = payload[0..<space]
        guard method.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5A) || $0 == 0x2D }) else { return nil }
        var targetEnd = payload[(space + 1)..<end].firstIndex(of: 0x20) ?? end
        guard targetEnd > space + 1 else { return nil }
        targetEnd = min(targetEnd, space + 1 + 2048)
        return (
            String(decoding: method, as: UTF8.self), String(decoding: payload[(space + 1)..<targetEnd], as: UTF8.self)
        )
    }

    /// `HTTP/1.1 503 Service Unavailable` → 503; nil unless the code is 100…599.
    static func statusCode(_ payload: [UInt8]) -> Int? {
        // "HTTP/x.y " is 9 bytes, then three digits.
        guard payload.count >= 12, payload[0] == 0x48, payload[1] == 0x54, payload[2] == 0x54, payload[3] == 0x50,
            payload[4] == 0x2F, payload[8] == 0x20
        else { return nil }
        var code = 0
        for index in 9..<12 {
            let byte = payload[index]
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            code = code * 10 + Int(byte - 0x30)
        }
        if payload.count > 12, payload[12] != 0x20, payload[12] != 0x0D, payload[12] != 0x0A { return nil }
        return (100...599).contains(code) ? code : nil
    }

    /// The body's length: the head's `Content-Length` when it has one (exact even when the
    /// recorded body was cut by `--copy-buffer-size` or `--output-http-response-buffer`), else
    /// the bytes after the blank line that ends the head, as recorded (a chunked body counts its
    /// chunk framing). Zero when the head has no end.
    static func bodyLength(_ payload: [UInt8]) -> Int {
        var index = 0
        let count = payload.count
        while index + 3 < count {
            if payload[index] == 0x0D, payload[index + 1] == 0x0A, payload[index + 2] == 0x0D,
                payload[index + 3] == 0x0A
            {
                return contentLength(payload[..<index]) ?? count - (index + 4)
            }
            index += 1
        }
        return 0
    }

    /// `Content-Length` of a response head, if present and a plain number.
    private static func contentLength(_ head: ArraySlice<UInt8>) -> Int? {
        let name = Array("content-length:".utf8)
        for line in head.split(separator: 0x0A) {
            let trimmed = line.drop { $0 == 0x0D }
            guard trimmed.count > name.count,
                zip(trimmed.prefix(name.count), name).allSatisfy({ ($0 | 0x20) == $1 || $0 == $1 })
            else { continue }
            let digits = trimmed.dropFirst(name.count).filter { $0 != 0x20 && $0 != 0x09 && $0 != 0x0D }
            guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                return nil
            }
            return digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
        }
        return nil
    }

    private static func lineEnd(_ payload: [UInt8]) -> Int {
        let limit = min(payload.count, 4096)
        var index = 0
        while index < limit, payload[index] != 0x0D, payload[index] != 0x0A { index += 1 }
        return index
    }
}
