import Foundation
import SSHTransport
import TestFleet
import Testing

/// Uploads that fail on the host name the cause, although SFTP v3 reports it as a bare "failure".
@Suite("Upload failures name their cause", .enabled(if: TestFleet.isSupported, "needs root and the test fleet tools"))
final class UploadFaultTests: Sendable {
    let fleet: TestFleet
    let reactor: SSHReactor

    init() async throws {
        fleet = try await offPool { try TestFleet.start(TestFleetOptions(hostCount: 1, namePrefix: "upload")) }
        reactor = try SSHReactor()
    }

    deinit {
        reactor.shutdown()
        fleet.stop()
    }

    @Test("a full disk is 'no space left', and the partial file is removed")
    func diskFull() async throws {
        let host = fleet.hosts[0]
        // A 1 MiB filesystem, mounted only inside this host's mount namespace.
        let mounted = try fleet.run(
            on: host.name, "mkdir -p /opt/goreplay/small && mount -t tmpfs -o size=1m tmpfs /opt/goreplay/small")
        try #require(mounted.status == 0, "\(mounted.output)")
        let session = try await SharedFleet.connect(fleet, host, user: fleet.rootUser, reactor: reactor)
        let bytes = [UInt8](repeating: 0x5a, count: 3 * 1024 * 1024)
        do {
            try await session.upload(data: bytes, to: "/opt/goreplay/small/goreplay", mode: 0o755)
            Issue.record("a 3 MiB upload into 1 MiB succeeded")
        } catch let error as SSHError {
            let text = "\(error)"
            #expect(text.contains("no space left on the host's filesystem for /opt/goreplay/small/"), "\(text)")
            #expect(!text.contains("e.g. target exists"), "\(text)")
        }
        let left = try fleet.run(on: host.name, "ls -A /opt/goreplay/small").output
        #expect(left.isEmpty, "partial files left: \(left)")
        await session.close()
    }

    @Test("a directory the login may not write is named as such")
    func notWritable() async throws {
        let session = try await SharedFleet.connect(fleet, fleet.hosts[0], reactor: reactor)
        do {
            try await session.upload(data: [1, 2, 3], to: "/opt/goreplay/x", mode: 0o644)
            Issue.record("the non-root login wrote into root's /opt/goreplay")
        } catch let error as SSHError {
            #expect("\(error)".contains("permission denied"), "\(error)")
        }
        await session.close()
    }
}
