import Foundation
import Replay
import Testing

/// `.gz` by file name, both ways, checked against the real gzip tools.
@Suite("gzip .gor files")
struct GzipFileTests {
    /// Runs a program, returning its exit status and standard output.
    private func run(_ program: String, _ arguments: [String]) throws -> (status: Int32, output: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    private func records(_ path: String) throws -> [ReplayMessage] {
        let reader = try GorFileReader(path: path)
        var messages: [ReplayMessage] = []
        while let message = try reader.next() { messages.append(message) }
        #expect(reader.skippedCount == 0)
        return messages
    }

    private func messages(_ count: Int) -> [ReplayMessage] {
        (0..<count).map {
            requestMessage($0, request("GET /page/\($0)?q=\(String(repeating: "x", count: $0 % 50)) HTTP/1.1\nHost: a"))
        }
    }

    @Test("--output-file x.gor.gz writes gzip that gzip -t and zcat accept, and goreplay reads back")
    func writesGzip() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.gor")
        let sent = messages(500)
        try writeGor(sent, to: input)
        let output = directory.appendingPathComponent("out.gor.gz").path
        let result = await runGoReplay([
            "--input-file", input.path + "|100000%", "--output-file", output, "--output-file-append",
        ])
        #expect(result.status == 0)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: output))
        #expect(bytes.prefix(2) == Data([0x1F, 0x8B]))
        #expect(try run("/bin/gzip", ["-t", output]).status == 0)
        let unzipped = try run("/bin/zcat", [output])
        #expect(unzipped.status == 0)
        #expect(unzipped.output == (try Data(contentsOf: input)))
        #expect(try records(output) == sent)
        // And replayed from the .gz as input.
        let copy = directory.appendingPathComponent("copy.gor").path
        let again = await runGoReplay([
            "--input-file", output + "|100000%", "--output-file", copy, "--output-file-append",
        ])
        #expect(again.status == 0)
        #expect(try records(copy) == sent)
    }

    @Test("appending to a .gz adds a gzip member; rotation names chunks x_0.gor.gz … like GoReplay")
    func appendAndRotate() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let input = directory.appendingPathComponent("in.gor")
        try writeGor(messages(10), to: input)
        let appended = directory.appendingPathComponent("twice.gor.gz").path
        for _ in 0..<2 {
            let result = await runGoReplay([
                "--input-file", input.path + "|100000%", "--output-file", appended, "--output-file-append",
            ])
            #expect(result.status == 0)
        }
        #expect(try run("/bin/gzip", ["-t", appended]).status == 0)
        #expect(try run("/bin/zcat", [appended]).output.count == 2 * (try Data(contentsOf: input)).count)
        #expect(try records(appended).count == 20)

        let base = directory.appendingPathComponent("chunk.gor.gz").path
        let rotated = await runGoReplay([
            "--input-file", input.path + "|100000%", "--output-file", base, "--output-file-queue-limit", "4",
        ])
        #expect(rotated.status == 0)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("chunk") }
            .sorted()
        #expect(files == ["chunk.gor_0.gz", "chunk.gor_1.gz", "chunk.gor_2.gz"])
        var total = 0
        for file in files {
            let path = directory.appendingPathComponent(file).path
            #expect(try run("/bin/gzip", ["-t", path]).status == 0)
            total += try records(path).count
        }
        #expect(total == 10)
    }

    @Test("a file compressed by gzip(1) is read by name and by its magic number")
    func readsGzipFromTheTool() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let plain = directory.appendingPathComponent("tool.gor")
        let sent = messages(300)
        try writeGor(sent, to: plain)
        #expect(try run("/bin/gzip", ["-k", plain.path]).status == 0)
        #expect(try records(plain.path + ".gz") == sent)
        // Renamed without the suffix: still recognised.
        let renamed = directory.appendingPathComponent("renamed.gor").path
        try FileManager.default.moveItem(atPath: plain.path + ".gz", toPath: renamed)
        #expect(try records(renamed) == sent)
    }

    @Test("a .gz that is not gzip is a located error, not zero records")
    func corruptGzip() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("bad.gor.gz")
        try Data("1 abc 1 0\nGET / HTTP/1.1\r\n\r\n\n🐵🙈🙉\n".utf8).write(to: path)
        let reader = try GorFileReader(path: path.path)
        do {
            _ = try reader.next()
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("bad.gor.gz"))
            #expect(error.description.contains("not gzip data"))
        }
        // The command reports it before replaying anything: one line, exit 1.
        let run = await runGoReplay(["--input-file", path.path, "--output-null"])
        #expect(run.status == 1)
        #expect(run.errorLines == ["goreplay: gunzip \(path.path): not gzip data, or corrupt"])
    }
}
