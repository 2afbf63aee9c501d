import SSHTransport
import Testing

@testable import Fleet

/// A command's result keeps a bounded prefix of each stream, so a flood streams past in flat memory.
@Suite("Bounded command output")
struct BoundedOutputTests {
    @Test("keeps the first `limit` bytes of each stream and says when a stream passed it")
    func keepsAPrefix() {
        let output = BoundedOutput(limit: 10)
        for _ in 0..<1000 { output.append(OutputChunk(stream: .stdout, bytes: Array("0123456".utf8))) }
        output.append(OutputChunk(stream: .stderr, bytes: Array("err".utf8)))
        let (stdout, stderr, passed) = output.contents
        #expect(stdout == Array("0123456012".utf8))
        #expect(stderr == Array("err".utf8))
        #expect(passed)
    }

    @Test("output within the limit is kept whole and not flagged")
    func withinLimit() {
        let output = BoundedOutput(limit: 10)
        output.append(OutputChunk(stream: .stdout, bytes: Array("0123456789".utf8)))
        #expect(output.contents.stdout.count == 10)
        #expect(!output.contents.passedLimit)
    }

    @Test("the error for a parser's command past its limit says where and what to do")
    func limitError() {
        let text = "\(OutputLimitExceeded(host: "cache-1", limit: 1 << 20))"
        #expect(text.contains("cache-1") && text.contains("1024 KiB"))
    }
}
