import Foundation
import Replay
import Testing

@Suite("File output and file input")
struct FileOutputTests {
    private func count(_ path: String) throws -> Int {
        let reader = try GorFileReader(path: path)
        var count = 0
        while try reader.next() != nil { count += 1 }
        return count
    }

    @Test("--output-file-append really appends to an existing file")
    func appends() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.gor")
        try writeGor((0..<4).map { requestMessage($0, request("GET /\($0) HTTP/1.1\nHost: a")) }, to: input)
        let output = directory.appendingPathComponent("out.gor").path
        for _ in 0..<2 {
            let run = await runGoReplay(["--input-file", input.path, "--output-file", output, "--output-file-append"])
            #expect(run.status == 0)
        }
        #expect(try count(output) == 8)
        // Records pass through byte for byte.
        let once = try Data(contentsOf: input)
        let twice = try Data(contentsOf: URL(fileURLWithPath: output))
        #expect(twice == once + once)
    }

    @Test("recorded traffic is written 0600, and a symlink planted at the file's name is refused, not followed")
    func outputFilesArePrivateAndNoSymlinks() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.gor")
        try writeGor([requestMessage(0, request("GET /a HTTP/1.1\nHost: a\nCookie: session=secret"))], to: input)
        let output = directory.appendingPathComponent("out.gor").path
        #expect(
            await runGoReplay(["--input-file", input.path, "--output-file", output, "--output-file-append"]).status == 0
        )
        let mode = (try FileManager.default.attributesOfItem(atPath: output)[.posixPermissions] as? Int) ?? -1
        #expect(mode == 0o600)

        let victim = directory.appendingPathComponent("victim").path
        try "keep me\n".write(toFile: victim, atomically: false, encoding: .utf8)
        let planted = directory.appendingPathComponent("planted.gor").path
        try FileManager.default.createSymbolicLink(atPath: planted, withDestinationPath: victim)
        let run = await runGoReplay(["--input-file", input.path, "--output-file", planted, "--output-file-append"])
        #expect(run.status != 0 || run.errorText.contains("symbolic link"), "\(run.errorText)")
        #expect(run.errorText.contains("symbolic link"), "\(run.errorText)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "keep me\n")
    }

    @Test("chunks rotate on size and record count: name_0.gor, name_1.gor, …")
    func rotation() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.gor")
        let body = String(repeating: "x", count: 900)
        try writeGor(
            (0..<10).map { requestMessage($0, request("POST /\($0) HTTP/1.1\nContent-Length: 900", body: body)) },
            to: input)
        let base = directory.appendingPathComponent("req.gor").path
        let run = await runGoReplay([
            "--input-file", input.path, "--output-file", base, "--output-file-size-limit", "3kb",
        ])
        #expect(run.status == 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("req_") }
            .sorted()
        // Each record is about 1,005 bytes: three fit in 3 KiB.
        #expect(files == ["req_0.gor", "req_1.gor", "req_2.gor", "req_3.gor"])
        for file in files {
            let size =
                try FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(file).path)[.size]
                as? Int ?? 0
            #expect(size <= 3 * 1024)
        }
        let counted = try files.map { try count(directory.appendingPathComponent($0).path) }.reduce(0, +)
        #expect(counted == 10)

        let byCount = directory.appendingPathComponent("n.gor").path
        _ = await runGoReplay([
            "--input-file", input.path, "--output-file", byCount, "--output-file-queue-limit", "4",
            "--output-file-size-limit", "0",
        ])
        let counts = try ["n_0.gor", "n_1.gor", "n_2.gor"].map { try count(directory.appendingPathComponent($0).path) }
        #expect(counts == [4, 4, 2])
    }

    @Test("date and type patterns in the file name")
    func namePatterns() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.gor")
        try writeGor([requestMessage(0, request("GET / HTTP/1.1\nHost: a"))], to: input)
        let template = directory.appendingPathComponent("traffic-%Y%m%d-%t.gor").path
        let run = await runGoReplay(["--input-file", input.path, "--output-file", template, "--output-file-append"])
        #expect(run.status == 0)
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        let date = String(format: "%04d%02d%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("traffic-\(date)-1.gor").path))
    }

    @Test("globbed input files are merged by timestamp")
    func globMerge() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let base: Int64 = 1_700_000_000_000_000_000
        try writeGor(
            [0, 2, 4].map { requestMessage($0, request("GET /\($0) HTTP/1.1"), timestamp: base + Int64($0)) },
            to: directory.appendingPathComponent("a.gor"))
        try writeGor(
            [1, 3, 5].map { requestMessage($0, request("GET /\($0) HTTP/1.1"), timestamp: base + Int64($0)) },
            to: directory.appendingPathComponent("b.gor"))
        let input = try GorFileInput(pattern: directory.appendingPathComponent("*.gor").path)
        var order: [Int64] = []
        for try await message in input.messages() { order.append(message.timestamp - base) }
        #expect(order == [0, 1, 2, 3, 4, 5])
    }

    @Test("|400% replays a 2 s recording faster than real time, |100% keeps its pace")
    func speedFactor() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.gor")
        try writeGor(
            (0..<5).map {
                requestMessage(
                    $0, request("GET / HTTP/1.1"), timestamp: 1_700_000_000_000_000_000 + Int64($0) * 500_000_000)
            },
            to: input)
        var start = ContinuousClock.now
        _ = await runGoReplay(["--input-file", input.path, "--output-null"])
        let normal = ContinuousClock.now - start
        start = ContinuousClock.now
        _ = await runGoReplay(["--input-file", input.path + "|400%", "--output-null"])
        let fast = ContinuousClock.now - start
        #expect(normal >= .milliseconds(1950))
        #expect(fast >= .milliseconds(480))
        #expect(fast < normal)
    }

    @Test("--output-stdout and --output-null count what they get")
    func nullAndDryRun() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.gor")
        try writeGor((0..<7).map { requestMessage($0, request("GET / HTTP/1.1")) }, to: input)
        let run = await runGoReplay(["--input-file", input.path, "--output-null"])
        #expect(run.errorText.contains("output null: sent 7"))
        let dry = await runGoReplay(["--input-file", input.path, "--input-file-dry-run"])
        #expect(dry.status == 0)
        #expect(dry.outputLines.first?.contains("records 7") == true)
    }
}

@Suite("HTTP request parsing")
struct HTTPRequestTests {
    @Test("unchanged requests serialise to the same bytes, bare LF included")
    func identity() throws {
        for text in [
            "GET /a HTTP/1.1\r\nHost: x\r\nA:b\r\n\r\nbody", "GET /a HTTP/1.0\nHost: x\n\n",
            "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
        ] {
            let request = try #require(HTTPRequest(parsing: Array(text.utf8)))
            #expect(request.serialized() == Array(text.utf8))
        }
        #expect(HTTPRequest(parsing: Array("HTTP/1.1 200 OK\r\n\r\n".utf8)) == nil)
        #expect(HTTPRequest(parsing: Array("GET / HTTP/1.1\r\nHost: x\r\n".utf8)) == nil)
    }

    @Test("response framing: content-length, chunked, HEAD, 1xx, close-delimited")
    func framing() throws {
        func frame(_ text: String, head: Bool = false) throws -> (Bool, Int, Bool) {
            var framer = HTTPResponseFramer(keepsRaw: false)
            framer.reset(requestMethodIsHead: head)
            let bytes = Array(text.utf8)
            var done = false
            for byte in bytes { // one byte at a time: the worst split
                done = try [byte].withUnsafeBytes { try framer.feed($0) }
            }
            return (done, framer.statusCode, framer.isCloseDelimited)
        }
        #expect(try frame("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc") == (true, 200, false))
        #expect(try frame("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab") == (false, 200, false))
        #expect(
            try frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n") == (
                true, 200, false
            ))
        #expect(try frame("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", head: true) == (true, 200, false))
        #expect(try frame("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n") == (true, 204, false))
        #expect(try frame("HTTP/1.0 200 OK\r\n\r\nstreaming") == (false, 200, true))
        #expect(throws: HTTPResponseFramer.FramingError.self) { try frame("SSH-2.0-OpenSSH\r\n\r\n") }
    }
}
