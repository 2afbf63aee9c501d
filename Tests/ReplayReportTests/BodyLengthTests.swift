import Testing

@testable import ReplayReport

/// Body lengths come from `Content-Length` when the head has it, so a recorded body cut short by
/// `--output-http-response-buffer` or `--copy-buffer-size` still compares by its real size.
@Suite("Body length of a recorded response")
struct BodyLengthTests {
    static func payload(_ head: String, body: Int) -> [UInt8] {
        Array((head + "\r\n\r\n").utf8) + [UInt8](repeating: 0x78, count: body)
    }

    @Test func contentLengthWinsOverWhatWasKept() {
        #expect(
            HTTPHeadline.bodyLength(Self.payload("HTTP/1.1 200 OK\r\nContent-Length: 5000000", body: 102_400))
                == 5_000_000)
        #expect(HTTPHeadline.bodyLength(Self.payload("HTTP/1.1 200 OK\r\ncontent-length:  12", body: 12)) == 12)
    }

    @Test func withoutAUsableContentLengthTheRecordedBytesCount() {
        #expect(HTTPHeadline.bodyLength(Self.payload("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked", body: 40)) == 40)
        #expect(HTTPHeadline.bodyLength(Self.payload("HTTP/1.1 200 OK\r\nContent-Length: 12x", body: 7)) == 7)
        #expect(HTTPHeadline.bodyLength(Array("HTTP/1.1 200 OK\r\nContent-Length: 9".utf8)) == 0)
    }
}
