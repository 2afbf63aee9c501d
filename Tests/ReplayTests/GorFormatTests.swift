import Foundation
import Replay
import Testing

@Suite("The .gor format")
struct GorFormatTests {
    let separator = "\n🐵🙈🙉\n"

    private func readAll(_ path: String) throws -> (messages: [ReplayMessage], reader: GorFileReader) {
        let reader = try GorFileReader(path: path)
        var messages: [ReplayMessage] = []
        while let message = try reader.next() { messages.append(message) }
        return (messages, reader)
    }

    @Test("write, read back, write again: byte-identical, 3- and 4-field metas")
    func roundTrip() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // GoReplay 0.16 wrote requests with three fields and 40-hex ids.
        let old = "1 " + String(repeating: "ab12", count: 10) + " 1400000000000000000\n"
        let oldPayload = "GET /a HTTP/1.1\r\nHost: www.gov.uk\r\n\r\n"
        let response = "2 " + String(repeating: "ab12", count: 10) + " 1400000000000000000 1234\n"
        let responsePayload = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        let newer = "1 0123456789abcdef01234567 1700000000000000000 5000\n"
        // Binary body bytes, an emoji that is not the separator, a big body
        // that straddles the reader's 64 KiB chunks.
        var bigBody = [UInt8](repeating: 0x41, count: 150_000)
        bigBody[70_000] = 0x0A
        bigBody[70_001] = 0xF0
        let newerPayload: [UInt8] =
            Array("POST /upload HTTP/1.1\r\nContent-Length: \(bigBody.count + 5)\r\n\r\n🐵\u{0}".utf8) + bigBody
        var original: [UInt8] = []
        original += Array((old + oldPayload + separator).utf8)
        original += Array((response + responsePayload + separator).utf8)
        original += Array(newer.utf8) + newerPayload + Array(separator.utf8)
        let first = directory.appendingPathComponent("a.gor")
        try Data(original).write(to: first)

        let (messages, reader) = try readAll(first.path)
        #expect(reader.skippedCount == 0)
        try #require(messages.count == 3)
        #expect(messages[0].type == .request)
        #expect(messages[0].id.count == 40)
        #expect(messages[0].latency == nil)
        #expect(messages[0].payload == Array(oldPayload.utf8))
        #expect(messages[1].type == .response)
        #expect(messages[1].latency == 1234)
        #expect(messages[2].id == "0123456789abcdef01234567")
        #expect(messages[2].timestamp == 1_700_000_000_000_000_000)
        #expect(messages[2].payload == newerPayload)

        var again: [UInt8] = []
        for message in messages { GorFormat.encode(message, into: &again) }
        #expect(again == original)
    }

    @Test("corrupt records are skipped and counted; reading goes on")
    func corruptRecords() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = "1 aa 1700000000000000000 0\nGET / HTTP/1.1\r\n\r\n" + separator
        let text =
            good
            + "garbage without fields\nxx" + separator // < 3 fields
            + "7 bb 1700000000000000001 0\nGET / HTTP/1.1\r\n\r\n" + separator // unknown type
            + "1 cc notanumber 0\nGET / HTTP/1.1\r\n\r\n" + separator // bad timestamp
            + "no newline at all" + separator
            + good
        let path = directory.appendingPathComponent("bad.gor")
        try Data(text.utf8).write(to: path)
        let (messages, reader) = try readAll(path.path)
        #expect(messages.count == 2)
        #expect(reader.skippedCount == 4)
        #expect(reader.skippedReasons.contains(.unknownType("7")))
    }

    @Test("meta lines: repeated spaces, a fifth field ignored, a bad latency refused")
    func metaFields() throws {
        let payload = Array("GET / HTTP/1.1\r\n\r\n".utf8)
        func decode(_ meta: String) throws(GorRecordError) -> ReplayMessage {
            try GorFormat.decodeRecord(ArraySlice(Array((meta + "\n").utf8) + payload))
        }
        let spaced = try decode("1  ab   17 ")
        #expect(spaced.type == .request && spaced.id == "ab" && spaced.timestamp == 17 && spaced.latency == nil)
        let five = try decode("2 cd 18 40 extra")
        #expect(five.type == .response && five.id == "cd" && five.timestamp == 18 && five.latency == 40)
        #expect(five.payload == payload)
        #expect(throws: GorRecordError.malformedMeta("3 ef 19 x")) { try decode("3 ef 19 x") }
        #expect(throws: GorRecordError.malformedMeta("1 gh")) { try decode("1 gh") }
    }

    @Test("a truncated last record is counted, earlier ones are read")
    func truncatedFile() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = "1 aa 1700000000000000000 0\nGET / HTTP/1.1\r\n\r\n" + separator
        let path = directory.appendingPathComponent("cut.gor")
        let tail = "1 bb 1700000000000000002 0\nGET /half"
        try Data((good + good + tail).utf8).write(to: path)
        let (messages, reader) = try readAll(path.path)
        #expect(messages.count == 2)
        #expect(reader.skippedCount == 1)
        #expect(reader.skippedReasons == [.truncated(tail.utf8.count)])

        // A file cut inside the separator itself loses only that record.
        let path2 = directory.appendingPathComponent("cut2.gor")
        try Data((good + String(good.dropLast(3))).utf8).write(to: path2)
        let (messages2, reader2) = try readAll(path2.path)
        #expect(messages2.count == 1)
        #expect(reader2.skippedCount == 1)
    }

    @Test("a missing file is a clear error")
    func missingFile() {
        #expect(throws: FileIOError.self) { _ = try GorFileReader(path: "/nonexistent/x.gor") }
    }

    @Test("corrupt records are reported by the command, replay continues")
    func corruptThroughCommand() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let good = "1 aa 1700000000000000000 0\nGET / HTTP/1.1\r\n\r\n" + separator
        let path = directory.appendingPathComponent("bad.gor")
        try Data((good + "junk\n" + separator + good + "1 cc 17000").utf8).write(to: path)
        let out = directory.appendingPathComponent("out.gor")
        let run = await runGoReplay(["--input-file", path.path, "--output-file", out.path, "--output-file-append"])
        #expect(run.status == 0)
        #expect(run.counter("requests read") == 2)
        #expect(run.counter("corrupt records") == 2)
        #expect(run.errorText.contains("skipped record"))
    }
}
