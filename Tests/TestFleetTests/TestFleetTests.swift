import Foundation
import Testing

@testable import TestFleet

/// Runs the real `ssh` client against `host` and returns its exit status and output.
private func ssh(
    _ fleet: TestFleet, _ host: TestFleetHost, _ command: String, extraOptions: [String] = [], user: String? = nil
) throws -> SubprocessResult {
    try runSubprocess("/usr/bin/ssh", extraOptions + fleet.sshArguments(for: host, user: user) + [command])
}

/// The live processes in the PID namespace with this /proc/PID/ns/pid link.
private func processesRemain(inNamespace namespace: String) -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.filter { entry in
        entry.allSatisfy(\.isNumber)
            && (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(entry)/ns/pid"))
                == namespace
            && !hasFinished(entry)
    }
}

/// True when the process is gone or a zombie (exited, not yet reaped).
private func hasFinished(_ pid: String) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.range(of: ") ", options: .backwards)
    else { return true } // gone counts as not remaining
    return stat[close.upperBound...].hasPrefix("Z")
}

private func readPID(_ path: String) throws -> String {
    try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
}

/// Serialized: these tests block while fleets start and stop, and the concurrency pool has one thread
/// per core; run side by side they starved the SSH sessions of every other suite.
@Suite("Test fleet of real sshd hosts", .serialized, .enabled(if: TestFleet.isSupported, "needs root, sshd, unshare"))
struct TestFleetTests {
    @Test("each host listens on its own address with its own verified host keys")
    func hostsAreDistinctAndVerified() throws {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 3))
        defer { fleet.stop() }

        #expect(fleet.hosts.map(\.name) == ["host-1", "host-2", "host-3"])
        #expect(Set(fleet.hosts.map(\.address)).count == 3)
        for (index, host) in fleet.hosts.enumerated() {
            #expect(host.address == "\(fleet.subnet).\(index + 1)")
            #expect(host.port == 2222)
            let result = try ssh(fleet, host, "hostname")
            #expect(result.status == 0, "\(host.name): \(result.output)")
            #expect(result.output == "\(host.name)\n")
        }

        // Every host has its own ed25519 and ECDSA key in known_hosts.
        let knownHosts = try String(contentsOfFile: fleet.knownHostsPath, encoding: .utf8)
            .split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        #expect(knownHosts.count == 6)
        #expect(Set(knownHosts.map { $0[2] }).count == 6)
        for host in fleet.hosts {
            let types = knownHosts.filter { $0[0] == "[\(host.address)]:2222" }.map { $0[1] }
            #expect(types.sorted() == ["ecdsa-sha2-nistp256", "ssh-ed25519"])
        }

        // Strict checking really checks: host-1's keys listed under host-2's address fail.
        let host1 = try #require(fleet.host(named: "host-1"))
        let host2 = try #require(fleet.host(named: "host-2"))
        let wrongKnownHosts = fleet.workDirectory + "/wrong_known_hosts"
        let swapped =
            knownHosts.filter { $0[0] == "[\(host1.address)]:2222" }
            .map { "[\(host2.address)]:2222 \($0[1]) \($0[2])" }.joined(separator: "\n") + "\n"
        try swapped.write(toFile: wrongKnownHosts, atomically: true, encoding: .utf8)
        let mismatch = try runSubprocess(
            "/usr/bin/ssh",
            ["-o", "UserKnownHostsFile=\(wrongKnownHosts)"] + fleet.sshArguments(for: host2) + ["true"])
        #expect(mismatch.status == 255)
        #expect(mismatch.output.contains("HOST IDENTIFICATION HAS CHANGED"), "\(mismatch.output)")
    }

    @Test("the default login is production's: a non-root user whose sudo needs no password; root still logs in")
    func loginIsNonRootWithSudo() throws {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 1))
        defer { fleet.stop() }
        let host = try #require(fleet.host(named: "host-1"))
        #expect(fleet.user != "root")
        let plain = try ssh(fleet, host, "id -un; hostname; sudo -n id -un")
        #expect(plain.status == 0, "\(plain.output)")
        // No "unable to resolve host" or other sudo noise: stderr is empty.
        #expect(plain.output == "\(fleet.user)\nhost-1\nroot\n")
        #expect(try ssh(fleet, host, "touch /etc/govuk/x").status != 0)
        let root = try ssh(fleet, host, "id -u", user: fleet.rootUser)
        #expect(root.output == "0\n")
        // The user exists only inside the hosts, never on this machine.
        #expect(getpwnam(fleet.user) == nil)
    }

    @Test("a file under one host's private path exists only on that host")
    func privatePathsArePerHost() throws {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 3))
        defer { fleet.stop() }
        let flag = "/etc/govuk/env.d/FACTER_data_sync_in_progress"
        let host1 = try #require(fleet.host(named: "host-1"))

        // Written from the test machine into host-1's backing tree.
        let real = host1.realPath(flag)
        #expect(real == host1.stateRoot + flag)
        #expect(host1.realPath("/usr/bin/env") == "/usr/bin/env")
        try FileManager.default.createDirectory(
            atPath: (real as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try "true\n".write(toFile: real, atomically: true, encoding: .utf8)

        let inside = try fleet.run(on: "host-1", "cat \(flag)")
        #expect(inside.status == 0)
        #expect(inside.output == "true\n")
        let overSSH = try ssh(fleet, host1, "cat \(flag)")
        #expect(overSSH.status == 0, "\(overSSH.output)")
        #expect(overSSH.output == "true\n")
        // The bind mount exists only inside host-1's namespace.
        #expect(!FileManager.default.fileExists(atPath: flag))

        for name in ["host-2", "host-3"] {
            let host = try #require(fleet.host(named: name))
            #expect(try fleet.run(on: name, "test -e \(flag)").status == 1)
            #expect(try ssh(fleet, host, "test -e \(flag)").status == 1)
            #expect(!FileManager.default.fileExists(atPath: host.realPath(flag)))
        }

        // Written on host-2 over ssh: lands in host-2's tree, invisible to host-1.
        let host2 = try #require(fleet.host(named: "host-2"))
        #expect(
            try ssh(fleet, host2, "sudo -n sh -c 'mkdir -p /run/govuk-fab && echo 42 > /run/govuk-fab/app.pid'").status
                == 0)
        #expect(try String(contentsOfFile: host2.realPath("/run/govuk-fab/app.pid"), encoding: .utf8) == "42\n")
        #expect(try fleet.run(on: "host-1", "test -e /run/govuk-fab/app.pid").status == 1)
    }

    @Test("a daemon started over ssh runs only in that host's PID namespace and dies with it")
    func processesArePerHost() throws {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 2))
        defer { fleet.stop() }
        let host1 = try #require(fleet.host(named: "host-1"))

        let started = try ssh(fleet, host1, "setsid sleep 300 </dev/null >/dev/null 2>&1 &")
        #expect(started.status == 0, "\(started.output)")
        let onHost1 = try fleet.run(on: "host-1", "pgrep -x sleep")
        #expect(onHost1.status == 0)
        #expect(!onHost1.output.isEmpty)
        #expect(try fleet.run(on: "host-2", "pgrep -x sleep").status == 1)
        // The sshd is PID 1 of the host's namespace.
        #expect(try fleet.run(on: "host-2", "cat /proc/1/comm").output == "sshd\n")

        let nspid = try readPID(host1.directory + "/nspid")
        let namespace = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(nspid)/ns/pid")
        #expect(processesRemain(inNamespace: namespace).count >= 2) // sshd and sleep
        fleet.stop()
        #expect(processesRemain(inNamespace: namespace).isEmpty)
    }

    @Test("a stopped host refuses connections, the others keep serving, and it can start again")
    func stopHostMakesItUnreachable() throws {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 2, namePrefix: "web"))
        defer { fleet.stop() }
        let web1 = try #require(fleet.host(named: "web-1"))
        let web2 = try #require(fleet.host(named: "web-2"))

        try fleet.stopHost("web-1")
        let refused = try ssh(fleet, web1, "true")
        #expect(refused.status == 255)
        #expect(refused.output.contains("Connection refused"), "\(refused.output)")
        #expect(try ssh(fleet, web2, "true").status == 0)
        #expect(throws: TestFleetError.hostNotRunning("web-1")) { try fleet.run(on: "web-1", "true") }
        #expect(try fleet.run(on: "web-2", "exit 125").status == 125)

        try fleet.startHost("web-1")
        #expect(try ssh(fleet, web1, "hostname").output == "web-1\n")
        #expect(throws: TestFleetError.unknownHost("web-9")) { try fleet.stopHost("web-9") }
    }

    @Test("stop() ends every process it started and releases the subnet; it is idempotent")
    func stopCleansUp() throws {
        let fleet = try TestFleet.start(TestFleetOptions(hostCount: 3))
        let pids = try fleet.hosts.flatMap { host in
            [try readPID(host.directory + "/pid"), try readPID(host.directory + "/nspid")]
        }
        let claim = "/tmp/govuk-testfleet-subnets/" + fleet.subnet.dropFirst("127.".count)
        #expect(FileManager.default.fileExists(atPath: claim))
        #expect(pids.allSatisfy { !hasFinished($0) })

        fleet.stop()
        #expect(pids.allSatisfy { hasFinished($0) }, "still running: \(pids.filter { !hasFinished($0) })")
        #expect(!FileManager.default.fileExists(atPath: claim))
        #expect(!FileManager.default.fileExists(atPath: fleet.workDirectory))
        fleet.stop()
        let refused = try ssh(fleet, fleet.hosts[0], "true", extraOptions: ["-o", "ConnectTimeout=2"])
        #expect(refused.status == 255)
    }

    @Test("two fleets at once get different subnets and both work")
    func concurrentFleetsDoNotCollide() throws {
        let first = try TestFleet.start(TestFleetOptions(hostCount: 2))
        defer { first.stop() }
        let second = try TestFleet.start(TestFleetOptions(hostCount: 2))
        defer { second.stop() }
        #expect(first.subnet != second.subnet)
        #expect(try ssh(first, first.hosts[1], "hostname").output == "host-2\n")
        #expect(try ssh(second, second.hosts[1], "hostname").output == "host-2\n")
    }

    @Test("bad options are refused before anything starts")
    func invalidOptions() {
        #expect(throws: TestFleetError.self) { try TestFleet.start(TestFleetOptions(hostCount: 0)) }
        #expect(throws: TestFleetError.self) { try TestFleet.start(TestFleetOptions(hostCount: 251)) }
        #expect(throws: TestFleetError.self) {
            try TestFleet.start(TestFleetOptions(hostCount: 1, namePrefix: "bad name"))
        }
        var relative = TestFleetOptions(hostCount: 1)
        relative.privatePaths = ["etc/govuk"]
        #expect(throws: TestFleetError.self) { try TestFleet.start(relative) }
        var hidesSystem = TestFleetOptions(hostCount: 1)
        hidesSystem.privatePaths = ["/usr"]
        #expect(throws: TestFleetError.self) { try TestFleet.start(hidesSystem) }
    }
}

@Suite("Test fleet host paths")
struct TestFleetHostTests {
    @Test("realPath maps only private paths into the host's tree")
    func realPathMapping() {
        let host = TestFleetHost(
            name: "h", address: "127.1.2.1", port: 2222, stateRoot: "/fleet/hosts/h/root",
            directory: "/fleet/hosts/h", privatePaths: ["/etc/govuk", "/opt/goreplay"])
        #expect(host.realPath("/etc/govuk") == "/fleet/hosts/h/root/etc/govuk")
        #expect(host.realPath("/etc/govuk/env.d/X") == "/fleet/hosts/h/root/etc/govuk/env.d/X")
        #expect(host.realPath("/etc/govuk-fab/x") == "/etc/govuk-fab/x")
        #expect(host.realPath("/etc/passwd") == "/etc/passwd")
    }
}
