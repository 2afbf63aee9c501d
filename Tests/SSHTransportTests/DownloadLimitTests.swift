import Foundation
import SSHTransport
import TestFleet
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(
    "SFTP download: size limit and local safety",
    .enabled(if: TestFleet.isSupported, "needs root and the test fleet tools"))
final class DownloadLimitTests: Sendable {
    let fleet: TestFleet
    let reactor: SSHReactor
    let scratch: String

    init() async throws {
        fleet = try await offPool { try SharedFleet.get() }
        reactor = try SSHReactor()
        scratch = try makeTemporaryDirectory("govuk-fab-download-test")
    }

    deinit {
        reactor.shutdown()
        try? FileManager.default.removeItem(atPath: scratch)
    }

    private func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: scratch).filter { $0.contains("govuk-fab-") }
    }

    @Test("a file over the limit fails before anything is written; within it, the bytes arrive and are counted")
    func limit() async throws {
        let session = try await SharedFleet.connect(fleet, fleet.hosts[2], user: fleet.rootUser, reactor: reactor)
        let bytes = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try await session.upload(data: bytes, to: "/opt/goreplay/limit.bin", mode: 0o600)
        let target = "\(scratch)/limit.bin"
        do {
            try await session.download("/opt/goreplay/limit.bin", to: target, limit: 1000)
            Issue.record("a 1 MiB file passed a 1000-byte limit")
        } catch let error as SSHError {
            #expect(error.kind == .fileTooLarge(size: 1 << 20, limit: 1000))
            #expect(error.description.contains("/opt/goreplay/limit.bin is 1048576 bytes, more than the 1000 allowed"))
        }
        #expect(!FileManager.default.fileExists(atPath: target))
        #expect(try leftovers().isEmpty)
        // The session is still good, and a limit the file fits passes it whole.
        let written = try await session.download("/opt/goreplay/limit.bin", to: target, limit: 2 << 20)
        #expect(written == 1 << 20)
        #expect(try Data(contentsOf: URL(fileURLWithPath: target)) == Data(bytes))
        _ = try await session.run("rm -f /opt/goreplay/limit.bin")
        await session.close()
    }

    @Test("a symlink at the local name is replaced, never written through")
    func localSymlink() async throws {
        let session = try await SharedFleet.connect(fleet, fleet.hosts[2], user: fleet.rootUser, reactor: reactor)
        try await session.upload(data: Array("remote\n".utf8), to: "/opt/goreplay/small.txt", mode: 0o600)
        let victim = "\(scratch)/victim"
        try "precious\n".write(toFile: victim, atomically: true, encoding: .utf8)
        let target = "\(scratch)/small.txt"
        try FileManager.default.createSymbolicLink(atPath: target, withDestinationPath: victim)
        try await session.download("/opt/goreplay/small.txt", to: target, limit: 100)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious\n")
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "remote\n")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: target)) == nil)
        _ = try await session.run("rm -f /opt/goreplay/small.txt")
        await session.close()
    }
}
