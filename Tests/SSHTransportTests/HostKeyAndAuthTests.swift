import Foundation
import Logging
import SSHTransport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A client directory with its own key, and an sshd that trusts that key.
struct StandaloneFixture: Sendable {
    let clientDirectory: String
    let clientKey: String
    let sshd: StandaloneSSHD
    let reactor: SSHReactor

    init(hostKeyTypes: [String] = ["ed25519", "ecdsa"], extraAuthorizedKeys: [String] = [], sshdConfig: [String] = [])
        throws
    {
        clientDirectory = try makeTemporaryDirectory("govuk-fab-client")
        clientKey = try makeUserKey(in: clientDirectory)
        sshd = try StandaloneSSHD(
            hostKeyTypes: hostKeyTypes, authorizedKeys: [try readText(clientKey + ".pub")] + extraAuthorizedKeys,
            extraConfig: sshdConfig)
        reactor = try SSHReactor()
    }

    /// Starts the fixture off the concurrency pool: starting sshd blocks for a while, and the pool's
    /// one thread per core is what every running SSH session (here and in other suites) waits on.
    static func make(
        hostKeyTypes: [String] = ["ed25519", "ecdsa"], extraAuthorizedKeys: [String] = [], sshdConfig: [String] = []
    ) async throws -> StandaloneFixture {
        try await offPool {
            try StandaloneFixture(
                hostKeyTypes: hostKeyTypes, extraAuthorizedKeys: extraAuthorizedKeys, sshdConfig: sshdConfig)
        }
    }

    var endpoint: SSHEndpoint { SSHEndpoint(host: "127.0.0.1", port: sshd.port, user: "root") }

    /// Writes a known_hosts file with these lines and returns its path.
    func knownHosts(_ lines: [String], name: String = "known_hosts") throws -> String {
        let path = "\(clientDirectory)/\(name)"
        try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func options(knownHosts: String, identityFiles: [String]? = nil) -> SSHClientOptions {
        SSHClientOptions(
            connectTimeout: .seconds(30), useAgent: false, identityFiles: identityFiles ?? [clientKey],
            knownHostsFiles: [knownHosts])
    }

    func connect(_ options: SSHClientOptions, logger: Logger = quietLogger) async throws -> SSHSession {
        try await SSHSession.connect(to: endpoint, options: options, reactor: reactor, logger: logger)
    }

    /// Connects expecting an `SSHError`, and returns it.
    func connectFailure(_ options: SSHClientOptions) async throws -> SSHError {
        do {
            let session = try await connect(options)
            await session.close()
        } catch let error as SSHError {
            return error
        }
        throw TestSetupError("connect unexpectedly succeeded")
    }

    func cleanUp() {
        reactor.shutdown()
        sshd.stop()
        try? FileManager.default.removeItem(atPath: clientDirectory)
    }
}

/// The `SHA256:…` field of `ssh-keygen -lf`.
func keygenFingerprint(_ publicKeyPath: String) throws -> String {
    let output = try shell("ssh-keygen -lf \(publicKeyPath)").output
    return String(output.split(separator: " ")[1])
}

@Suite("Host keys", .enabled(if: isRoot, "needs root to run sshd"))
struct HostKeyTests {
    @Test("an unknown host is refused with its OpenSSH fingerprint and how to add it")
    func unknownHost() async throws {
        let fixture = try await StandaloneFixture.make()
        defer { fixture.cleanUp() }
        let file = try fixture.knownHosts([])
        let error = try await fixture.connectFailure(fixture.options(knownHosts: file))
        let expected = try keygenFingerprint(fixture.sshd.hostKeys["ed25519"]! + ".pub")
        // The remedy names the file the inventory gave, not ~/.ssh/known_hosts.
        #expect(error.description.hasSuffix(">> \(file)"), "\(error)")
        #expect(error.kind == .unknownHostKey(fingerprint: expected, keyType: "ssh-ed25519"))
        #expect(error.operation == .hostKey)
        #expect(error.description.contains(expected))
        #expect(error.description.contains("ssh-keyscan -p \(fixture.sshd.port)"))
    }

    @Test("a changed host key of the same type is refused loudly")
    func changedKey() async throws {
        let fixture = try await StandaloneFixture.make()
        defer { fixture.cleanUp() }
        let otherKey = try makeUserKey(in: fixture.clientDirectory, name: "impostor")
        let fields = try readText(otherKey + ".pub").split(separator: " ")
        let known = try fixture.knownHosts(["[127.0.0.1]:\(fixture.sshd.port) \(fields[0]) \(fields[1])"])
        let error = try await fixture.connectFailure(fixture.options(knownHosts: known))
        let presented = try keygenFingerprint(fixture.sshd.hostKeys["ed25519"]! + ".pub")
        #expect(error.kind == .hostKeyChanged(fingerprint: presented, keyType: "ssh-ed25519"))
        #expect(error.description.contains("HOST KEY CHANGED"))
        #expect(error.description.contains("ssh-keygen -R '[127.0.0.1]:\(fixture.sshd.port)'"))
    }

    @Test("known_hosts with only the ed25519 key verifies although libssh2 1.10 prefers ECDSA")
    func ed25519Only() async throws {
        let fixture = try await StandaloneFixture.make(hostKeyTypes: ["ecdsa", "ed25519"])
        defer { fixture.cleanUp() }
        let session = try await fixture.connect(
            fixture.options(knownHosts: try fixture.knownHosts([try fixture.sshd.knownHostsLine("ed25519")])))
        #expect(session.hostKeyAlgorithm == "ssh-ed25519")
        #expect(session.hostKeyFingerprint == (try keygenFingerprint(fixture.sshd.hostKeys["ed25519"]! + ".pub")))
        await session.close()
    }

    @Test("known_hosts with only the ECDSA key verifies with ECDSA")
    func ecdsaOnly() async throws {
        let fixture = try await StandaloneFixture.make()
        defer { fixture.cleanUp() }
        let session = try await fixture.connect(
            fixture.options(knownHosts: try fixture.knownHosts([try fixture.sshd.knownHostsLine("ecdsa")])))
        #expect(session.hostKeyAlgorithm == "ecdsa-sha2-nistp256")
        await session.close()
    }

    @Test("a malformed known_hosts line is skipped with a warning naming file:line")
    func malformedLine() async throws {
        let fixture = try await StandaloneFixture.make()
        defer { fixture.cleanUp() }
        let path = try fixture.knownHosts([
            "# a comment", "this line is not a known_hosts entry", try fixture.sshd.knownHostsLine("ed25519"),
        ])
        let (logger, logs) = capturingLogger()
        let session = try await fixture.connect(fixture.options(knownHosts: path), logger: logger)
        await session.close()
        #expect(logs.warnings.contains { $0.contains("\(path):2") && $0.contains("malformed") })
        #expect(!logs.warnings.contains { $0.contains("\(path):1") || $0.contains("\(path):3") })
    }

    @Test("a hashed known_hosts entry (ssh-keygen -H) verifies")
    func hashedEntry() async throws {
        let fixture = try await StandaloneFixture.make()
        defer { fixture.cleanUp() }
        let path = try fixture.knownHosts([try fixture.sshd.knownHostsLine("ed25519")])
        let hashed = try shell("ssh-keygen -H -f \(path)")
        #expect(hashed.status == 0)
        let contents = try readText(path)
        #expect(contents.hasPrefix("|1|"))
        #expect(!contents.contains("127.0.0.1"))
        let session = try await fixture.connect(fixture.options(knownHosts: path))
        #expect(session.hostKeyAlgorithm == "ssh-ed25519")
        await session.close()
    }
}

@Suite("Authentication and connecting", .enabled(if: isRoot, "needs root to run sshd"))
struct AuthenticationTests {
    @Test("a key the server does not know gives an auth error naming user@host and the key tried")
    func wrongKey() async throws {
        let fixture = try await StandaloneFixture.make()
        defer { fixture.cleanUp() }
        let stranger = try makeUserKey(in: fixture.clientDirectory, name: "stranger")
        let known = try fixture.knownHosts([try fixture.sshd.knownHostsLine("ed25519")])
        let error = try await fixture.connectFailure(fixture.options(knownHosts: known, identityFiles: [stranger]))
        #expect(error.kind == .authenticationFailed)
        #expect(error.operation == .auth)
        #expect(error.description.contains("root@127.0.0.1:\(fixture.sshd.port)"))
        #expect(error.description.contains(stranger))
    }

    @Test("a missing identity file is named as missing, not blamed on authorized_keys")
    func missingIdentityFile() async throws {
        let fixture = try await StandaloneFixture.make()
        defer { fixture.cleanUp() }
        let missing = fixture.clientDirectory + "/no-such-key"
        let known = try fixture.knownHosts([try fixture.sshd.knownHostsLine("ed25519")])
        let error = try await fixture.connectFailure(fixture.options(knownHosts: known, identityFiles: [missing]))
        #expect(error.kind == .authenticationFailed)
        #expect(error.description.contains("\(missing) (does not exist)"), "\(error)")
        #expect(!error.description.contains("authorized_keys"), "\(error)")
    }

    @Test("an RSA user key gets the RSA-specific error (libssh2 1.10 signs only ssh-rsa/SHA-1)")
    func rsaKey() async throws {
        let directory = try makeTemporaryDirectory("govuk-fab-rsa")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rsaKey = try makeUserKey(in: directory, type: "rsa", name: "legacy")
        let fixture = try await StandaloneFixture.make(extraAuthorizedKeys: [try readText(rsaKey + ".pub")])
        defer { fixture.cleanUp() }
        let known = try fixture.knownHosts([try fixture.sshd.knownHostsLine("ed25519")])
        let error = try await fixture.connectFailure(fixture.options(knownHosts: known, identityFiles: [rsaKey]))
        #expect(error.kind == .rsaKeyRejected)
        #expect(error.description.contains("ed25519"))
        #expect(error.description.contains("SHA-1"))
    }

    @Test("a passphrase-protected key works through a real ssh-agent")
    func agent() async throws {
        let fixture = try await StandaloneFixture.make()
        defer { fixture.cleanUp() }
        let directory = fixture.clientDirectory
        let locked = try makeUserKey(in: directory, name: "locked", passphrase: "correct horse")
        let authorized = "\(fixture.sshd.directory)/authorized_keys"
        try (try readText(locked + ".pub") + "\n").write(toFile: authorized, atomically: true, encoding: .utf8)
        let known = try fixture.knownHosts([try fixture.sshd.knownHostsLine("ed25519")])

        // Without the agent, the encrypted key cannot be used, and the error says why.
        let noAgent = try await fixture.connectFailure(fixture.options(knownHosts: known, identityFiles: [locked]))
        #expect(noAgent.kind == .authenticationFailed)
        #expect(noAgent.description.contains("ssh-agent"))

        let socketPath = "\(directory)/agent.sock"
        let agent = try spawnShell("exec /usr/bin/ssh-agent -D -a \(socketPath)")
        defer {
            kill(agent, SIGTERM)
            waitForChild(agent)
        }
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socketPath) { usleep(20_000) }
        let askpass = "\(directory)/askpass.sh"
        try "#!/bin/sh\necho 'correct horse'\n".write(toFile: askpass, atomically: true, encoding: .utf8)
        chmod(askpass, 0o700)
        let added = try shell(
            "SSH_AUTH_SOCK=\(socketPath) SSH_ASKPASS=\(askpass) SSH_ASKPASS_REQUIRE=force DISPLAY=none ssh-add \(locked) </dev/null"
        )
        try #require(added.status == 0, "ssh-add failed: \(added.output)")

        var options = fixture.options(knownHosts: known, identityFiles: [locked])
        options.useAgent = true
        options.agentSocketPath = socketPath
        let session = try await fixture.connect(options)
        let (result, out, _) = try await session.run("echo via-agent")
        #expect(result.exitStatus == 0)
        #expect(out == "via-agent\n")
        await session.close()
    }

    @Test("a listener that accepts TCP but never speaks SSH fails within the connect timeout")
    func silentListener() async throws {
        let reactor = try SSHReactor()
        defer { reactor.shutdown() }
        let (fd, port) = try makeSilentListener()
        defer { close(fd) }
        let options = SSHClientOptions(connectTimeout: .seconds(1), useAgent: false, knownHostsFiles: [])
        let started = ContinuousClock.now
        do {
            _ = try await SSHSession.connect(
                to: SSHEndpoint(host: "127.0.0.1", port: port, user: "root"), options: options, reactor: reactor,
                logger: quietLogger)
            Issue.record("connect to a silent listener succeeded")
        } catch let error as SSHError {
            #expect(error.kind == .connectTimeout)
            #expect(error.operation == .handshake)
        }
        // A loose bound: a correctness check that it gives up rather than
        // hangs, on a 2-core machine shared with the rest of the suite.
        #expect(ContinuousClock.now - started < .seconds(10))
    }

    @Test("connect can be cancelled while the server stays silent")
    func cancelConnect() async throws {
        let reactor = try SSHReactor()
        defer { reactor.shutdown() }
        let (fd, port) = try makeSilentListener()
        defer { close(fd) }
        let options = SSHClientOptions(connectTimeout: .seconds(30), useAgent: false, knownHostsFiles: [])
        let started = ContinuousClock.now
        let task = Task {
            try await SSHSession.connect(
                to: SSHEndpoint(host: "127.0.0.1", port: port, user: "root"), options: options, reactor: reactor,
                logger: quietLogger)
        }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        do {
            _ = try await task.value
            Issue.record("connect was not cancelled")
        } catch {
            #expect(error is CancellationError)
        }
        // Well under the 30 s connect timeout: cancelled, not timed out
        // (loose, as the suite shares two cores with the rest of the tests).
        #expect(ContinuousClock.now - started < .seconds(15))
    }

    @Test("a closed port is reported as connection refused")
    func refused() async throws {
        let reactor = try SSHReactor()
        defer { reactor.shutdown() }
        let port = try freeLoopbackPort()
        await #expect {
            _ = try await SSHSession.connect(
                to: SSHEndpoint(host: "127.0.0.1", port: port, user: "root"),
                options: SSHClientOptions(useAgent: false, knownHostsFiles: []), reactor: reactor, logger: quietLogger)
        } throws: { ($0 as? SSHError)?.kind == .connectionRefused }
    }

    @Test("IPv6 loopback and hostname resolution work")
    func ipv6AndNames() async throws {
        let reactor = try SSHReactor()
        defer { reactor.shutdown() }
        let port = try freeLoopbackPort()
        for host in ["::1", "localhost"] {
            await #expect {
                _ = try await SSHSession.connect(
                    to: SSHEndpoint(host: host, port: port, user: "root"),
                    options: SSHClientOptions(useAgent: false, knownHostsFiles: []), reactor: reactor,
                    logger: quietLogger)
            } throws: { ($0 as? SSHError)?.kind == .connectionRefused }
        }
        await #expect {
            _ = try await SSHSession.connect(
                to: SSHEndpoint(host: "no-such-host.invalid", port: port, user: "root"),
                options: SSHClientOptions(useAgent: false, knownHostsFiles: []), reactor: reactor, logger: quietLogger)
        } throws: { ($0 as? SSHError)?.kind == .nameResolution }
    }
}

/// A loopback socket that listens (the kernel completes TCP handshakes) but never accepts or speaks.
func makeSilentListener() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0
        }
    }
    guard ok else {
        close(fd)
        throw TestSetupError("cannot listen on loopback")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}
