import Testing

@testable import Replay

/// Parses `text` as a complete head.
private func head(_ text: String, _ role: HTTP1Role = .request) throws(HTTP1HeadError) -> HTTP1Head {
    try HTTP1Head(parsing: Array(text.utf8), role: role)
}

/// Runs a chunked decoder over `bytes` split at `splits`; returns the index
/// just past the body, or nil while incomplete.
private func decodeChunked(_ bytes: [UInt8], splitAt splits: [Int] = []) throws(ChunkedBodyDecoder.DecodingError)
    -> Int?
{
    var decoder = ChunkedBodyDecoder(maxSizeLineLength: 64, maxTrailerBytes: 256)
    var offset = 0
    for end in splits + [bytes.count] where end >= offset {
        let run = Array(bytes[offset..<end])
        var index = 0
        let result: Result<Void, ChunkedBodyDecoder.DecodingError> = run.withUnsafeBytes { raw in
            Result { () throws(ChunkedBodyDecoder.DecodingError) in try decoder.consume(raw, at: &index) }
        }
        try result.get()
        if decoder.isComplete { return offset + index }
        #expect(index == run.count)
        offset = end
    }
    return nil
}

@Suite("HTTP/1 core: heads")
struct HTTP1HeadTests {
    static let heads = [
        "GET /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.0\nHost: x\nTransfer-Encoding: chunked\n\n",
        "PURGE * HTTP/1.1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: keep-alive, Upgrade\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.0 404\r\nX:\r\n\r\n",
    ]

    @Test("the scanner finds the end of a head split at every byte, and the parse agrees", arguments: heads)
    func splitAtEveryByte(text: String) throws {
        let bytes = Array(text.utf8)
        let role: HTTP1Role = text.hasPrefix("HTTP/") ? .response : .request
        let whole = try HTTP1Head(parsing: bytes, role: role)
        for split in 0...bytes.count {
            var scanner = HTTP1HeadScanner()
            var end: Int?
            for (offset, run) in [(0, Array(bytes[..<split])), (split, Array(bytes[split...]))] where end == nil {
                let (next, complete) = run.withUnsafeBytes { scanner.scan($0, from: 0) }
                if complete { end = offset + next } else { #expect(next == run.count) }
            }
            #expect(end == whole.length, "split at \(split)")
            #expect(scanner.startLineLength == whole.startLineLength)
        }
        // One byte at a time.
        var scanner = HTTP1HeadScanner()
        var end: Int?
        for (offset, byte) in bytes.enumerated() where end == nil {
            if [byte].withUnsafeBytes({ scanner.scan($0, from: 0) }).complete { end = offset + 1 }
        }
        #expect(end == whole.length)
    }

    @Test("start lines: valid, a consistent prefix, garbage")
    func startLines() {
        #expect(HTTP1StartLine.check(Array("GET / HTTP/1.1\r\n".utf8), role: .request) == .valid)
        #expect(HTTP1StartLine.check(Array("M-SEARCH * HTTP/1.1\n".utf8), role: .request) == .valid)
        #expect(HTTP1StartLine.check(Array("GET /x HTT".utf8), role: .request) == .needMore)
        #expect(HTTP1StartLine.check(Array("GET /x HTTP/2.0\r\n".utf8), role: .request) == .invalid)
        #expect(HTTP1StartLine.check(Array("GET /x HTTP/1.1\rX\n".utf8), role: .request) == .invalid)
        #expect(HTTP1StartLine.check(Array("GET  / HTTP/1.1\r\n".utf8), role: .request) == .invalid)
        #expect(HTTP1StartLine.check(Array("\u{16}\u{03}\u{01}".utf8), role: .request) == .invalid)
        #expect(HTTP1StartLine.check(Array("HTTP/1.1 204\r\n".utf8), role: .response) == .valid)
        #expect(HTTP1StartLine.check(Array("HTTP/1.1 2".utf8), role: .response) == .needMore)
        #expect(HTTP1StartLine.check(Array("HTTP/1.1 2x0 OK\r\n".utf8), role: .response) == .invalid)
        #expect(HTTP1StartLine.check(Array("SSH-2.0-OpenSSH\r\n".utf8), role: .response) == .invalid)
    }

    @Test("framing fields: Content-Length, the final transfer coding, Connection, Expect")
    func fields() throws {
        let request = try head("POST /u HTTP/1.1\r\nhost: x\r\ncontent-LENGTH:  12 \r\nExpect: 100-Continue\r\n\r\n")
        #expect(request.method == "POST")
        #expect(request.contentLength == 12)
        #expect(try request.bodyFraming() == .fixed(12))
        #expect(request.expectContinueLine == 49..<71)
        #expect(request.isPersistent)

        #expect(
            try head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 4\r\n\r\n").bodyFraming()
                == .chunked)
        #expect(
            try head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n\r\n").bodyFraming()
                == .chunked)
        #expect(throws: HTTP1HeadError.unframeableTransferEncoding(line: 2)) {
            try head("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").bodyFraming()
        }
        #expect(try head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", .response).bodyFraming() == .untilClose)
        #expect(
            try head("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").bodyFraming() == .fixed(5))
        #expect(try head("GET / HTTP/1.1\r\n\r\n").bodyFraming() == .none)

        // Comma lists: items trimmed, empty ones skipped, any position.
        #expect(
            try head("POST / HTTP/1.1\r\nTransfer-Encoding: gzip ,\tchunked,\r\n\r\n").bodyFraming() == .chunked)
        #expect(try !head("HTTP/1.1 200 OK\r\nConnection: Upgrade, ,  close\r\n\r\n", .response).isPersistent)
        #expect(try head("HTTP/1.0 200 OK\r\nConnection: ,keep-alive,\r\n\r\n", .response).isPersistent)
        #expect(try head("HTTP/1.1 200 OK\r\nConnection: closed, keep-alive-x\r\n\r\n", .response).isPersistent)
        #expect(try head("HTTP/1.1 200 OK\r\nConnection:\r\n\r\n", .response).isPersistent)
        #expect(try !head("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n", .response).isPersistent)
        #expect(try !head("HTTP/1.0 200 OK\r\n\r\n", .response).isPersistent)
        #expect(try head("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n", .response).isPersistent)
    }

    @Test("a response's body follows its status and request method")
    func responseBodies() throws {
        let ok = try head("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", .response)
        #expect(try ok.bodyFraming(requestMethod: "GET") == .fixed(7))
        #expect(try ok.bodyFraming(requestMethod: "HEAD") == .none)
        #expect(try ok.bodyFraming(requestMethod: "CONNECT") == .none)
        for status in ["100 Continue", "101 Switching", "204 No Content", "304 Not Modified"] {
            #expect(try head("HTTP/1.1 \(status)\r\nContent-Length: 7\r\n\r\n", .response).bodyFraming() == .none)
        }
        #expect(try head("HTTP/1.1 103 Early Hints\r\n\r\n", .response).isInterim)
        #expect(try !head("HTTP/1.1 101 Switching\r\n\r\n", .response).isInterim)
        #expect(try head("HTTP/1.1 500 Oops\r\n\r\n", .response).bodyFraming() == .untilClose)
    }

    @Test("bad heads are refused with the line at fault")
    func refusals() {
        #expect(throws: HTTP1HeadError.obsoleteLineFolding(line: 3)) {
            try head("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n")
        }
        #expect(throws: HTTP1HeadError.obsoleteLineFolding(line: 2)) {
            try head("GET / HTTP/1.1\r\n\tContent-Length: 5\r\n\r\n")
        }
        #expect(throws: HTTP1HeadError.malformedField(line: 2, text: "Content-Length : 5")) {
            try head("GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n")
        }
        #expect(throws: HTTP1HeadError.malformedField(line: 3, text: "no colon here")) {
            try head("GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        }
        #expect(throws: HTTP1HeadError.malformedField(line: 2, text: ": v")) {
            try head("GET / HTTP/1.1\r\n: v\r\n\r\n")
        }
        #expect(throws: HTTP1HeadError.invalidContentLength(line: 3, text: "4")) {
            try head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n")
        }
        for value in ["-1", "0x10", "", "1 2", "1234567890123456789"] {
            #expect(throws: HTTP1HeadError.invalidContentLength(line: 2, text: value)) {
                try head("POST / HTTP/1.1\r\nContent-Length: \(value)\r\n\r\n")
            }
        }
        #expect(throws: HTTP1HeadError.incomplete) { try head("GET / HTTP/1.1\r\nHost: x\r\n") }
        #expect(throws: HTTP1HeadError.malformedStartLine("HTTP/1.1 200 OK\r\n")) {
            try head("HTTP/1.1 200 OK\r\n\r\n")
        }
        #expect(HTTP1HeadError.obsoleteLineFolding(line: 3).isFramingError)
        #expect(!HTTP1HeadError.malformedStartLine("x").isFramingError)
    }

    @Test("one ASCII case-insensitive comparison for every caller")
    func caseInsensitive() {
        #expect(ASCII.equalsIgnoringCase("Content-Length".utf8, "content-length".utf8))
        #expect(!ASCII.equalsIgnoringCase("Content-Lengthx".utf8, "content-length".utf8))
        #expect(!ASCII.equalsIgnoringCase("[".utf8, "{".utf8)) // 0x5B | 0x20 == 0x7B: not letters
        #expect(!ASCII.equalsIgnoringCase("é".utf8, "É".utf8))
    }
}

@Suite("HTTP/1 core: chunked bodies")
struct ChunkedBodyDecoderTests {
    static let body = Array(
        "4;name=\"v\";x\r\nWiki\r\n5 ; ext\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nExpires: never\r\nX-Sum: 1\r\n\r\nNEXT"
            .utf8)

    @Test("extensions and trailers, split at every byte: the end is found exactly")
    func splitAtEveryByte() throws {
        let end = Self.body.count - 4 // "NEXT" belongs to the next message
        #expect(try decodeChunked(Self.body) == end)
        for split in 0...Self.body.count {
            #expect(try decodeChunked(Self.body, splitAt: [split]) == end, "split at \(split)")
        }
        #expect(try decodeChunked(Self.body, splitAt: Array(1..<Self.body.count)) == end)
    }

    @Test("bare LF line ends, upper-case hex, and an incomplete body")
    func tolerances() throws {
        #expect(try decodeChunked(Array("1F\n\(String(repeating: "x", count: 31))\n0\n\n".utf8)) == 38)
        #expect(try decodeChunked(Array("5\r\nhel".utf8)) == nil)
        #expect(try decodeChunked(Array("0\r\nTrailer: x\r\n".utf8)) == nil)
    }

    @Test("malformed bodies throw and say where they stopped")
    func malformed() {
        #expect(throws: ChunkedBodyDecoder.DecodingError.malformedChunkSize) { try decodeChunked(Array("zz\r\n".utf8)) }
        #expect(throws: ChunkedBodyDecoder.DecodingError.malformedChunkSize) { try decodeChunked(Array("\r\n".utf8)) }
        #expect(throws: ChunkedBodyDecoder.DecodingError.malformedChunkSize) { try decodeChunked(Array(";x\r\n".utf8)) }
        #expect(throws: ChunkedBodyDecoder.DecodingError.malformedChunkSize) {
            try decodeChunked(Array("FFFFFFFFFFFFFFFFFF\r\n".utf8))
        }
        #expect(throws: ChunkedBodyDecoder.DecodingError.missingDataTerminator) {
            try decodeChunked(Array("3\r\nabcX\r\n".utf8))
        }
        #expect(throws: ChunkedBodyDecoder.DecodingError.chunkSizeLineTooLong) {
            try decodeChunked(Array("1;\(String(repeating: "e", count: 100))\r\n".utf8))
        }
        #expect(throws: ChunkedBodyDecoder.DecodingError.trailersTooLarge) {
            try decodeChunked(Array("0\r\n\(String(repeating: "T: v\r\n", count: 100))\r\n".utf8))
        }
        var decoder = ChunkedBodyDecoder()
        var index = 0
        #expect(throws: ChunkedBodyDecoder.DecodingError.missingDataTerminator) {
            try Array("2\r\nabX".utf8).withUnsafeBytes { raw in try decoder.consume(raw, at: &index) }
        }
        #expect(index == 6)
    }

    @Test("a capture gap inside chunk data is skipped; elsewhere it is refused")
    func gaps() throws {
        var decoder = ChunkedBodyDecoder()
        var index = 0
        try Array("8\r\nab".utf8).withUnsafeBytes { raw in try decoder.consume(raw, at: &index) }
        #expect(decoder.dataRemaining == 6)
        let tooMuch = decoder.skipData(7)
        let within = decoder.skipData(4)
        #expect(!tooMuch && within)
        index = 0
        try Array("gh\r\n0\r\n\r\n".utf8).withUnsafeBytes { raw in try decoder.consume(raw, at: &index) }
        #expect(decoder.isComplete)
    }
}

@Suite("HTTP/1 core: replayed response framing")
struct HTTPResponseFramerCoreTests {
    private func frame(_ pieces: [[UInt8]], head: Bool = false) throws(HTTPResponseFramer.FramingError)
        -> HTTPResponseFramer
    {
        var framer = HTTPResponseFramer(keepsRaw: false)
        framer.reset(requestMethodIsHead: head)
        for piece in pieces {
            let result: Result<Bool, HTTPResponseFramer.FramingError> = piece.withUnsafeBytes { raw in
                Result { () throws(HTTPResponseFramer.FramingError) in try framer.feed(raw) }
            }
            _ = try result.get()
        }
        return framer
    }

    @Test("a response split at every byte completes exactly at its end")
    func splitAtEveryByte() throws {
        let text = Array(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n"
                .utf8)
        for split in 0..<text.count {
            let framer = try frame([Array(text[..<split]), Array(text[split..<(text.count - 1)])])
            #expect(!framer.isComplete, "split at \(split)")
            let done = try frame([Array(text[..<split]), Array(text[split...])])
            #expect(done.isComplete && done.statusCode == 200 && done.closesConnection, "split at \(split)")
        }
    }

    @Test("bad responses are errors naming the cause, never a crash")
    func refusals() {
        #expect(throws: HTTPResponseFramer.FramingError.malformedHead(.obsoleteLineFolding(line: 3))) {
            try frame([Array("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n 2\r\n\r\n".utf8)])
        }
        #expect(throws: HTTPResponseFramer.FramingError.malformedChunk(.malformedChunkSize)) {
            try frame([Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n".utf8)])
        }
        let huge =
            Array("HTTP/1.1 200 OK\r\n".utf8)
            + Array(repeating: Array("X-Filler: 0123456789012345678901234567890123456789\r\n".utf8), count: 1400)
            .joined()
        #expect(throws: HTTPResponseFramer.FramingError.headTooLarge) {
            try frame(stride(from: 0, to: huge.count, by: 1000).map { Array(huge[$0..<min(huge.count, $0 + 1000)]) })
        }
    }

    @Test("random bytes through every core entry point: errors, never a crash")
    func garbage() {
        var generator = SplitMix64(seed: 19)
        let alphabet = Array(
            "HTTP/1.1 200 GET Content-Length: chunked Transfer-Encoding:0123456789abcdef;\r\n\r\n \t:,".utf8)
        for _ in 0..<2000 {
            let count = Int(generator.next() % 200)
            let bytes = (0..<count).map { _ in
                generator.next() % 4 == 0
                    ? UInt8(truncatingIfNeeded: generator.next())
                    : alphabet[Int(generator.next() % UInt64(alphabet.count))]
            }
            for role in [HTTP1Role.request, .response] {
                _ = try? HTTP1Head(parsing: bytes, role: role).bodyFraming(requestMethod: "GET")
                _ = HTTP1StartLine.check(bytes, role: role)
            }
            var scanner = HTTP1HeadScanner()
            _ = bytes.withUnsafeBytes { scanner.scan($0, from: 0) }
            _ = try? decodeChunked(bytes, splitAt: [count / 2])
            _ = try? frame([Array(bytes.prefix(count / 3)), Array(bytes.dropFirst(count / 3))])
            _ = HTTPRequest(parsing: bytes)?.serialized()
        }
    }
}

/// A small deterministic generator, so a failure replays.
private struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
