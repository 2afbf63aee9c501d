import Foundation
import Logging
import SSHTransport
import Synchronization
import TestFleet
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// One fleet shared by the suite's tests (started on first use; TestFleet's owner watcher tears it
/// down when the test process exits).
enum SharedFleet {
    static let started: Result<TestFleet, TestFleetError> = Result { () throws(TestFleetError) in
        try TestFleet.start(TestFleetOptions(hostCount: 6, namePrefix: "ssh"))
    }

    static func get() throws -> TestFleet { try started.get() }

    static func options(_ fleet: TestFleet) -> SSHClientOptions {
        SSHClientOptions(
            connectTimeout: .seconds(30), useAgent: false, identityFiles: [fleet.clientKeyPath],
            knownHostsFiles: [fleet.knownHostsPath])
    }

    /// Logs in as the fleet's default (non-root) user, or as `user`.
    static func connect(_ fleet: TestFleet, _ host: TestFleetHost, user: String? = nil, reactor: SSHReactor)
        async throws -> SSHSession
    {
        try await SSHSession.connect(
            to: SSHEndpoint(host: host.address, port: host.port, user: user ?? fleet.user), options: options(fleet),
            reactor: reactor, logger: quietLogger)
    }
}

/// Polls `condition` (which may block: it runs on its own thread) every 50 ms for up to `limit`,
/// without holding one of the concurrency pool's few threads (2 on a 2-core machine), which the SSH
/// sessions of every suite running in parallel need.
func eventuallyOffPool(within limit: Duration, _ condition: @escaping @Sendable () throws -> Bool) async throws -> Bool
{
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await offPool(condition) { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return try await offPool(condition)
}

/// Polls `condition` every 50 ms for up to `limit`.
func eventually(within limit: Duration, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        usleep(50_000)
    }
    return try condition()
}

@Suite("Exec and SFTP on the test fleet", .enabled(if: TestFleet.isSupported, "needs root and the test fleet tools"))
final class FleetTests: Sendable {
    let fleet: TestFleet
    let reactor: SSHReactor
    let scratch: String

    init() async throws {
        // The first test starts the shared fleet: off the concurrency pool, which other suites need.
        fleet = try await offPool { try SharedFleet.get() }
        reactor = try SSHReactor()
        scratch = try makeTemporaryDirectory("govuk-fab-ssh-test")
        // The hosts' non-root login reads and writes here (mkdtemp made it 0700).
        chmod(scratch, 0o1777)
    }

    deinit {
        reactor.shutdown()
        try? FileManager.default.removeItem(atPath: scratch)
    }

    func connect(_ index: Int) async throws -> SSHSession {
        try await SharedFleet.connect(fleet, fleet.hosts[index], reactor: reactor)
    }

    @Test("commands run on several hosts at once, with separate stdout, stderr and exit codes")
    func concurrentExec() async throws {
        let results = try await withThrowingTaskGroup(of: (Int, CommandResult, String, String).self) { group in
            for index in fleet.hosts.indices {
                group.addTask {
                    let session = try await self.connect(index)
                    let (result, out, err) = try await session.run("hostname; echo to-stderr >&2; exit \(index + 1)")
                    await session.close()
                    return (index, result, out, err)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.count == fleet.hosts.count)
        for (index, result, out, err) in results {
            #expect(out == fleet.hosts[index].name + "\n")
            #expect(err == "to-stderr\n")
            #expect(result.exitStatus == Int32(index + 1))
            #expect(result.exitSignal == nil)
            #expect(!result.timedOut)
        }
    }

    @Test("exit signals are reported, and a session runs several commands in turn")
    func exitSignal() async throws {
        let session = try await connect(0)
        let killed = try await session.run("kill -TERM $$")
        #expect(killed.result.exitSignal == "TERM")
        let fine = try await session.run("echo still here")
        #expect(fine.result.succeeded)
        #expect(fine.stdout == "still here\n")
        let quoted = try await session.run("printf '%s\\n' \(shellQuote("it's $HOME `x`"))")
        #expect(quoted.stdout == "it's $HOME `x`\n")
        await session.close()
    }

    @Test("concurrent calls on one session are serialised and all complete")
    func concurrentCallsOnOneSession() async throws {
        let session = try await connect(0)
        let outputs = try await withThrowingTaskGroup(of: String.self) { group in
            for index in 0..<8 {
                group.addTask { try await session.run("echo \(index)").stdout }
            }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(outputs == Set((0..<8).map { "\($0)\n" }))
        try await session.upload(data: Array("x".utf8), to: "/tmp/govuk-fab-serial-\(getpid())")
        #expect(
            try await session.run("cat /tmp/govuk-fab-serial-\(getpid()); rm /tmp/govuk-fab-serial-\(getpid())").stdout
                == "x")
        await session.close()
        await session.close()
        await #expect {
            _ = try await session.run("true")
        } throws: { ($0 as? SSHError)?.kind == .sessionClosed }
    }

    @Test("3 MB on stderr and 1 MB on stdout at the same time arrive intact")
    func largeInterleavedOutput() async throws {
        let errPath = "\(scratch)/err.bin"
        let outPath = "\(scratch)/out.bin"
        #expect(
            try shell("head -c 3000000 /dev/urandom > \(errPath) && head -c 1000000 /dev/urandom > \(outPath)").status
                == 0)
        let session = try await connect(1)
        let (result, out, err) = try await session.runBytes("cat \(errPath) >&2 & cat \(outPath); wait")
        #expect(result.succeeded)
        #expect(out.count == 1_000_000)
        #expect(err.count == 3_000_000)
        #expect(out == Array(try Data(contentsOf: URL(fileURLWithPath: outPath))))
        #expect(err == Array(try Data(contentsOf: URL(fileURLWithPath: errPath))))
        await session.close()
    }

    @Test("a command past its timeout is reported as timed out and killed on the host")
    func timeoutKillsRemoteProcess() async throws {
        let pidFile = "\(scratch)/timeout.pid"
        let session = try await connect(2)
        let (result, _, _) = try await session.run("sleep 313 & echo $! > \(pidFile); wait", timeout: .seconds(1))
        #expect(result.timedOut)
        #expect(result.duration < .seconds(8))
        let pid = try readText(pidFile)
        #expect(!pid.isEmpty)
        let fleet = self.fleet
        let gone = try await eventuallyOffPool(within: .seconds(5)) {
            try fleet.run(on: fleet.hosts[2].name, "kill -0 \(pid)").status != 0
        }
        #expect(gone, "sleep (pid \(pid) on \(fleet.hosts[2].name)) still running after the timeout")
        // Nothing of the command is left once the watcher's SIGKILL grace (2 s) has passed.
        let nothingLeft = try await eventuallyOffPool(within: .seconds(5)) {
            try fleet.run(on: fleet.hosts[2].name, "pgrep -f '[s]leep 313'").status != 0
        }
        #expect(nothingLeft, "something of the timed-out command is still running")
        // The session stays usable.
        #expect(try await session.run("true").result.succeeded)
        await session.close()
    }

    @Test("cancelling a running command closes the channel and kills the remote process")
    func cancellationKillsRemoteProcess() async throws {
        let pidFile = "\(scratch)/cancel.pid"
        let session = try await connect(3)
        let task = Task { try await session.run("sleep 314 & echo $! > \(pidFile); wait") }
        #expect(try await eventuallyOffPool(within: .seconds(10)) { (try? readText(pidFile))?.isEmpty == false })
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("cancelled command returned normally")
        } catch {
            #expect(error is CancellationError)
        }
        let pid = try readText(pidFile)
        let fleet = self.fleet
        let gone = try await eventuallyOffPool(within: .seconds(5)) {
            try fleet.run(on: fleet.hosts[3].name, "kill -0 \(pid)").status != 0
        }
        #expect(gone, "sleep (pid \(pid)) still running after cancellation")
        #expect(try await session.run("echo ok").stdout == "ok\n")
        await session.close()
    }

    @Test("a 50 MB upload arrives with the same SHA-256 and mode; download round-trips it")
    func largeUploadAndDownload() async throws {
        let local = "\(scratch)/big.bin"
        #expect(try shell("head -c 52428800 /dev/urandom > \(local)").status == 0)
        let localHash = String(try shell("sha256sum \(local)").output.prefix(64))
        let host = fleet.hosts[4]
        // The transport has no sudo: writing a root-owned directory needs the root login.
        let session = try await SharedFleet.connect(fleet, host, user: fleet.rootUser, reactor: reactor)
        let started = ContinuousClock.now
        try await session.upload(file: local, to: "/opt/goreplay/big.bin", mode: 0o640)
        let elapsed = ContinuousClock.now - started
        print("upload of 50 MB took \(elapsed)")
        let remote = try await session.run("sha256sum /opt/goreplay/big.bin; stat -c %a /opt/goreplay/big.bin")
        let lines = remote.stdout.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first.map { String($0.prefix(64)) } == localHash)
        #expect(lines.last == "640")
        // The host's private /opt/goreplay really holds it, and no temporary file is left.
        #expect(FileManager.default.fileExists(atPath: host.realPath("/opt/goreplay/big.bin")))
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: host.realPath("/opt/goreplay")).filter {
                $0.contains("govuk-fab")
            } == [])

        let back = "\(scratch)/back.bin"
        let downloadStarted = ContinuousClock.now
        try await session.download("/opt/goreplay/big.bin", to: back)
        print("download of 50 MB took \(ContinuousClock.now - downloadStarted)")
        #expect(try shell("cmp \(local) \(back)").status == 0)
        #expect(try shell("stat -c %a \(back)").output == "640\n")
        _ = try await session.run("rm -f /opt/goreplay/big.bin")
        await session.close()
    }

    @Test("uploading over an existing file replaces it atomically (new inode, exact mode)")
    func atomicReplace() async throws {
        let session = try await SharedFleet.connect(fleet, fleet.hosts[5], user: fleet.rootUser, reactor: reactor)
        let path = "/etc/govuk/app.conf"
        try await session.upload(data: Array("one\n".utf8), to: path, mode: 0o600)
        let before = try await session.run("stat -c '%i %a' \(path); cat \(path)").stdout
        try await session.upload(data: Array("two\n".utf8), to: path, mode: 0o664)
        let after = try await session.run("stat -c '%i %a' \(path); cat \(path)").stdout
        let beforeFields = before.split(separator: "\n")
        let afterFields = after.split(separator: "\n")
        #expect(beforeFields.last == "one")
        #expect(afterFields.last == "two")
        #expect(beforeFields.first?.split(separator: " ").last == "600")
        #expect(afterFields.first?.split(separator: " ").last == "664")
        #expect(beforeFields.first?.split(separator: " ").first != afterFields.first?.split(separator: " ").first)
        let leftovers = try await session.run("ls -a /etc/govuk | grep govuk-fab || true").stdout
        #expect(leftovers.isEmpty)

        // A missing directory is an SFTP error with the status named.
        do {
            try await session.upload(data: [1, 2, 3], to: "/no/such/dir/file")
            Issue.record("upload to a missing directory succeeded")
        } catch let error as SSHError {
            #expect(error.operation == .upload)
            #expect(error.kind == .sftp(status: 2))
            #expect(error.description.contains("no such file"))
        }
        #expect(try await session.run("echo usable").stdout == "usable\n")
        await session.close()
    }

    @Test("a stopped host refuses connections")
    func stoppedHost() async throws {
        let privateFleet = try TestFleet.start(TestFleetOptions(hostCount: 1, namePrefix: "down"))
        defer { privateFleet.stop() }
        try privateFleet.stopHost(privateFleet.hosts[0].name)
        await #expect {
            _ = try await SharedFleet.connect(privateFleet, privateFleet.hosts[0], reactor: reactor)
        } throws: { ($0 as? SSHError)?.kind == .connectionRefused }
    }
}

extension SSHSession {
    /// Runs a command and collects stdout and stderr as bytes.
    func runBytes(_ command: String) async throws -> (CommandResult, [UInt8], [UInt8]) {
        let out = Mutex<[UInt8]>([])
        let err = Mutex<[UInt8]>([])
        let result = try await execute(command) { chunk in
            switch chunk.stream {
            case .stdout: out.withLock { $0 += chunk.bytes }
            case .stderr: err.withLock { $0 += chunk.bytes }
            }
        }
        return (result, out.withLock { $0 }, err.withLock { $0 })
    }
}
