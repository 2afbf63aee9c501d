import Testing

@testable import Capture

/// Feeds a framer runs of bytes and collects what it reports.
private struct FramerHarness {
    var framer: HTTPMessageFramer
    var events: [FramerEvent] = []
    var time: Int64 = 0

    init(_ role: HTTPMessageFramer.Role, synchronized: Bool = true, limits: HTTPMessageFramer.Limits = .init()) {
        framer = HTTPMessageFramer(role: role, synchronized: synchronized, limits: limits)
    }

    mutating func feed(_ text: String) { feed(Array(text.utf8)) }

    mutating func feed(_ bytes: [UInt8]) {
        time += 1
        let mark = StreamMark(timestamp: time, sequence: 0, acknowledgement: 0)
        bytes.withUnsafeBytes { framer.consume($0, mark: mark, into: &events) }
    }

    /// Feeds `text` split into runs of `size` bytes.
    mutating func feed(_ text: String, runsOf size: Int) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            feed(Array(bytes[offset..<min(bytes.count, offset + size)]))
            offset += size
        }
    }

    var messages: [String] {
        events.compactMap { if case .message(let message) = $0 { return message.bytes.text } else { return nil } }
    }

    var framed: [FramedMessage] {
        events.compactMap { if case .message(let message) = $0 { return message } else { return nil } }
    }

    var givenUp: [GiveUpReason] {
        events.compactMap { if case .gaveUp(let reason, _) = $0 { return reason } else { return nil } }
    }
}

@Suite("HTTP message framing")
struct HTTPMessageFramerTests {
    @Test("pipelined requests in one run are split exactly")
    func pipelined() {
        let first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        let second = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        let third = "PURGE /c HTTP/1.1\r\nHost: x\r\n\r\n"
        var harness = FramerHarness(.request)
        harness.feed(first + second + third)
        #expect(harness.messages == [first, second, third])
        #expect(harness.framed.map(\.method) == ["GET", "POST", "PURGE"])
    }

    @Test(
        "chunked body with extensions and trailers, fed one byte at a time",
        arguments: [1, 2, 7, 1000])
    func chunked(runSize: Int) {
        let request =
            "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
            + "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n"
        let next = "GET /after HTTP/1.1\r\n\r\n"
        var harness = FramerHarness(.request)
        harness.feed(request + next, runsOf: runSize)
        #expect(harness.messages == [request, next])
        #expect(harness.givenUp.isEmpty)
    }

    @Test("Content-Length body split across runs; timestamps span the runs")
    func contentLength() throws {
        let body = String(repeating: "x", count: 3000)
        let request = "PUT /f HTTP/1.0\r\nContent-Length: 3000\r\n\r\n" + body
        var harness = FramerHarness(.request)
        harness.feed(request, runsOf: 1000)
        let message = try #require(harness.framed.first)
        #expect(message.bytes.text == request)
        #expect(message.first.timestamp == 1)
        #expect(message.lastTimestamp == 4)
    }

    @Test("responses to HEAD, 204 and 304 have no body; 1xx interim replies of any size are skipped")
    func bodilessResponses() {
        var harness = FramerHarness(.response)
        harness.framer.expectResponse(ExpectedResponse(method: "HEAD", id: "h"))
        harness.framer.expectResponse(ExpectedResponse(method: "GET", id: "g"))
        harness.framer.expectResponse(ExpectedResponse(method: "POST", id: "p"))
        harness.framer.expectResponse(ExpectedResponse(method: "GET", id: "n"))
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
        let notModified = "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
        let interim = "HTTP/1.1 100 Continue\r\nX-Interim: a-longer-interim-response\r\n\r\n"
        let created = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
        let noContent = "HTTP/1.1 204 No Content\r\n\r\n"
        harness.feed(head + notModified + interim + created + noContent)
        #expect(harness.messages == [head, notModified, created, noContent])
        #expect(harness.framed.map { $0.request?.id } == ["h", "g", "p", "n"])
        #expect(harness.events.contains(.interimResponse(status: 100)))
    }

    @Test("a response without length ends when the connection closes")
    func closeDelimited() {
        var harness = FramerHarness(.response)
        let response = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until FIN"
        harness.feed(response, runsOf: 10)
        #expect(harness.messages.isEmpty)
        harness.framer.finish(reset: false, into: &harness.events)
        #expect(harness.messages == [response])
    }

    @Test("a reset cuts a close-delimited response: given up, not emitted")
    func closeDelimitedReset() {
        var harness = FramerHarness(.response)
        harness.feed("HTTP/1.0 200 OK\r\n\r\npartial")
        harness.framer.finish(reset: true, into: &harness.events)
        #expect(harness.messages.isEmpty)
        #expect(harness.givenUp == [.connectionReset])
    }

    @Test("Expect: 100-continue is located for removal")
    func expectContinue() throws {
        var harness = FramerHarness(.request)
        let request = "POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
        harness.feed(request)
        let message = try #require(harness.framed.first)
        let range = try #require(message.expectContinueLine)
        #expect(Array(message.bytes[range]).text == "Expect: 100-continue\r\n")
    }

    @Test("garbage is given up as not HTTP and the framer resynchronises on the next run")
    func garbageThenRequest() {
        var harness = FramerHarness(.request)
        harness.feed("\u{16}\u{03}\u{01}binary TLS-ish junk\r\n\r\n")
        harness.feed("GET /ok HTTP/1.1\r\n\r\n")
        #expect(harness.givenUp == [.notHTTP])
        #expect(harness.messages == ["GET /ok HTTP/1.1\r\n\r\n"])
    }

    @Test("a stream first seen mid-way skips to the first run that starts a message")
    func midStream() {
        var harness = FramerHarness(.request, synchronized: false)
        harness.feed("tail of some body\r\nGET /no HTTP/1.1\r\n\r\n")
        harness.feed("GET /yes HTTP/1.1\r\n\r\n")
        #expect(harness.messages == ["GET /yes HTTP/1.1\r\n\r\n"])
        #expect(harness.givenUp.isEmpty)
    }

    @Test("a gap inside a Content-Length body gives that message up but keeps framing in step")
    func gapInsideBody() {
        var harness = FramerHarness(.request)
        harness.feed("POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123")
        harness.framer.gap(lostBytes: 3, into: &harness.events)
        harness.feed("789GET /b HTTP/1.1\r\n\r\n")
        #expect(harness.givenUp == [.sequenceGap])
        #expect(harness.messages == ["GET /b HTTP/1.1\r\n\r\n"])
    }

    @Test("oversized messages are given up and skipped without losing the next one")
    func tooLarge() {
        var harness = FramerHarness(.request, limits: .init(maxHeaderBytes: 1024, maxMessageBytes: 100))
        harness.feed(
            "POST /big HTTP/1.1\r\nContent-Length: 500\r\n\r\n" + String(repeating: "z", count: 500), runsOf: 64)
        harness.feed("GET /small HTTP/1.1\r\n\r\n")
        #expect(harness.givenUp == [.messageTooLarge])
        #expect(harness.messages == ["GET /small HTTP/1.1\r\n\r\n"])
    }

    @Test("bad framing: conflicting Content-Length and bad chunk sizes")
    func badFraming() {
        var harness = FramerHarness(.request)
        harness.feed("POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc")
        harness.feed("POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
        #expect(harness.givenUp == [.badFraming, .badFraming])
        #expect(harness.messages.isEmpty)
    }

    @Test("expiry gives a partial message up, or emits it incomplete when allowed")
    func expiry() {
        var strict = FramerHarness(.request)
        strict.feed("POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n01")
        strict.framer.expire(allowIncomplete: false, into: &strict.events)
        #expect(strict.givenUp == [.expiredIncomplete])
        var lenient = FramerHarness(.request)
        lenient.feed("POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n01")
        lenient.framer.expire(allowIncomplete: true, into: &lenient.events)
        #expect(lenient.framed.map(\.isComplete) == [false])
    }
}
