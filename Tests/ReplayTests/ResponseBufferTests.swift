import Foundation
import Replay
import Testing

/// A tracked response keeps at most `--output-http-response-buffer` bytes, however large the
/// response: one 1 GiB answer once held 1 GiB in memory.
@Suite("Tracked responses are bounded")
struct ResponseBufferTests {
    @Test func aLargeResponseIsFramedWholeButKeptOnlyUpToTheLimit() throws {
        var framer = HTTPResponseFramer(keepsRaw: true, rawLimit: 100 * 1024)
        framer.reset(requestMethodIsHead: false)
        let bodySize = 8 << 20
        let head = Array("HTTP/1.1 200 OK\r\nContent-Length: \(bodySize)\r\n\r\n".utf8)
        var complete = try head.withUnsafeBytes { try framer.feed($0) }
        let chunk = [UInt8](repeating: UInt8(ascii: "x"), count: 64 * 1024)
        var fed = 0
        while fed < bodySize, !complete {
            complete = try chunk.withUnsafeBytes { try framer.feed($0) }
            fed += chunk.count
        }
        #expect(complete)
        #expect(framer.statusCode == 200)
        #expect(framer.raw.count == 100 * 1024)
        #expect(framer.raw.starts(with: head))
    }

    @Test func theFlagSetsTheLimitAndRefusesNonsense() async throws {
        let zero = await runGoReplay([
            "--input-file", "/dev/null", "--output-null", "--output-http-response-buffer", "0",
        ])
        #expect(zero.status == 2)
        #expect(zero.errorText.contains("output-http-response-buffer"))
        let huge = await runGoReplay([
            "--input-file", "/dev/null", "--output-null", "--output-http-response-buffer", "2tb",
        ])
        #expect(huge.status == 2)
    }
}
