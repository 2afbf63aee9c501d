import Foundation
import TestFleet
import Testing

/// Issue #15's findings through the real binary against the real test fleet: forged output lines,
/// a read-only playbook that was not, `goreplay.config` connecting, a unit-file injection, and a
/// dry run that asks a live source without saying so.
@Suite(
    "Trust boundaries through the CLI", .serialized,
    .enabled(if: fleetAvailable, "needs root, sshd and the built govuk-fab"))
final class TrustBoundaryCLITests {
    let fleet: FleetInventory

    init() throws {
        fleet = try FleetInventory(
            hosts: 2, prefix: "trust", confirmChanges: true,
            extra: """
                replay:
                  binary_path: /opt/goreplay/bin/goreplay
                  args:
                    gor: {capture: '{address}:7999', targets: ['https://staging.example']}
                """)
    }

    deinit { fleet.fleet.stop() }

    /// Logins recorded by every host's sshd so far.
    func logins() -> Int {
        fleet.fleet.hosts.reduce(0) { count, host in
            let log = (try? String(contentsOfFile: host.sshdLogPath, encoding: .utf8)) ?? ""
            return count + log.components(separatedBy: "Accepted publickey").count - 1
        }
    }

    @Test("a host printing \\r[other-host] ok: or ANSI escapes cannot forge a line")
    func forgedOutput() async throws {
        let result = try await fleet.fab([
            "--yes", "-H", "trust-1", "--", #"printf '\r[trust-2] ok: -- (0.1s)\033[2J\033[1A\n'"#,
        ])
        #expect(result.status == 0, "\(result)")
        #expect(!result.stdout.contains("\r") && !result.stdout.contains("\u{1B}"), "\(result.stdout.debugDescription)")
        #expect(result.stdout.contains(#"[trust-1] out: \r[trust-2] ok: -- (0.1s)\x1b[2J\x1b[1A"#), "\(result)")
        #expect(!result.stdout.split(separator: "\n").contains { $0.hasPrefix("[trust-2]") }, "\(result)")
    }

    @Test("changes: false with a sudo: step is refused at load, located, and nothing runs")
    func readOnlyPlaybookThatWritesIsRefused() async throws {
        let directory = fleet.directory + "/playbooks-attack"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let witness = "/tmp/govuk-fab-attack-\(UUID().uuidString)"
        let file = directory + "/attack.yml"
        try """
        name: attack.innocent_status
        summary: Looks read-only.
        changes: false
        steps:
          - run_read: uptime
          - sudo: touch \(witness)
        """.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: witness) }
        let result = try await fleet.fab(
            ["-H", "trust-1", "attack.innocent_status"],
            environment: ["GOVUK_FAB_PLAYBOOK_DIR": directory])
        #expect(!FileManager.default.fileExists(atPath: witness), "the sudo step ran without confirmation: \(result)")
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("attack.yml:6:5:"), "\(result.stderr)")
        #expect(
            result.stderr.contains(
                "changes: false (line 3): set changes: true, or, if the command only reads, write it as sudo_read:"),
            "\(result.stderr)")

        // Declared as changing, the same playbook asks first; with no terminal to ask on, it is refused.
        try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(
            of: "changes: false", with: "changes: true"
        )
        .write(toFile: file, atomically: true, encoding: .utf8)
        let honest = try await fleet.fab(
            ["-H", "trust-1", "attack.innocent_status"],
            environment: ["GOVUK_FAB_PLAYBOOK_DIR": directory])
        #expect(honest.status == 3, "\(honest)")
        #expect(!FileManager.default.fileExists(atPath: witness), "\(honest)")
    }

    @Test("the catalogue's read-only playbooks, sudo_read: included, still run without confirmation")
    func catalogueReadOnlyPlaybooksRun() async throws {
        let result = try await fleet.fab(["-H", "trust-1", "vm.uptime", "apt.packages_with_reboots", "vm.stopped_jobs"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("[trust-1] out: No packages with reboots"), "\(result)")
        #expect(result.stdout.contains("load average"), "\(result)")
    }

    @Test("goreplay.config renders every host without a single SSH login")
    func replayConfigConnectsToNothing() async throws {
        let before = logins()
        let result = try await fleet.fab(["all", "goreplay.config"])
        #expect(result.status == 0, "\(result)")
        let trust2 = result.stdout.split(separator: "\n").filter { $0.hasPrefix("[trust-2]   exec ") }
        #expect(trust2.count == 1 && trust2[0].contains("'/opt/goreplay/bin/goreplay' '--input-raw'"), "\(result)")
        #expect(logins() == before, "goreplay.config logged in to a host")
    }

    @Test("a newline in replay arguments is an inventory error naming file and line, before any connection")
    func unitInjectionRefusedBeforeConnecting() async throws {
        let path = fleet.directory + "/injected.yml"
        let yaml = try String(contentsOfFile: fleet.inventoryPath, encoding: .utf8).replacingOccurrences(
            of: "targets: ['https://staging.example']}",
            with:
                "targets: ['https://staging.example'], extra_args: [\"--stats\\nExecStartPre=/bin/touch /tmp/pwned\"]}")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let line =
            yaml.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("ExecStartPre") }!
            + 1
        let before = logins()
        let result = try await CLI.run(
            ["--inventory", path, "testfleet", "all", "deploy-goreplay", "--yes"],
            environment: ["XDG_STATE_HOME": fleet.directory + "/state"])
        #expect(result.status == 2, "\(result)")
        #expect(result.stderr.contains("injected.yml:\(line):"), "\(result.stderr)")
        #expect(
            result.stderr.contains("replay.args.gor.extra_args[0]")
                && result.stderr.contains("control character U+000A"), "\(result.stderr)")
        #expect(logins() == before)
    }

    @Test("--dry-run says on stderr that it asks the live source for the hosts; a cached answer asks nothing")
    func dryRunAnnouncesLiveSource() async throws {
        let gateway = fleet.fleet.hosts[0]
        let script = gateway.realPath("/etc/govuk-fab/node_list")
        let calls = "/tmp/govuk-fab-node-list-\(UUID().uuidString).calls"
        defer { try? FileManager.default.removeItem(atPath: calls) }
        try "#!/bin/sh\necho \"$*\" >> \(calls)\necho web-1.example.internal\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let path = fleet.directory + "/live.yml"
        try """
        name: live
        ssh:
          user: \(fleet.fleet.user)
          port: 2222
          identity_files: [\(fleet.fleet.clientKeyPath)]
          known_hosts: [\(fleet.fleet.knownHostsPath)]
          gateway: \(gateway.address):\(gateway.port)
          connect_timeout: 20s
        source: {gateway_command: /etc/govuk-fab/node_list}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let environment = [
            "XDG_STATE_HOME": fleet.directory + "/state",
            "XDG_CACHE_HOME": fleet.directory + "/cache-\(UUID().uuidString)",
        ]
        let first = try await CLI.run(
            ["--inventory", path, "live", "puppet_class:gor", "--dry-run", "sdo:reboot"], environment: environment)
        #expect(first.status == 0, "\(first)")
        #expect(
            first.stderr.contains(
                "govuk-fab: dry run: the host list is live: running `/etc/govuk-fab/node_list '-C' 'gor'` on \(gateway.address)"
            ),
            "\(first.stderr)")
        #expect(first.stdout.contains("[web-1] would run:"), "\(first)")
        #expect(try String(contentsOfFile: calls, encoding: .utf8) == "-C gor\n")

        let second = try await CLI.run(
            ["--inventory", path, "live", "puppet_class:gor", "--dry-run", "sdo:reboot"], environment: environment)
        #expect(second.status == 0, "\(second)")
        #expect(
            !second.stderr.contains("host list is live"),
            "a cached answer asks nothing, so says nothing: \(second.stderr)")
        #expect(try String(contentsOfFile: calls, encoding: .utf8) == "-C gor\n")
    }
}
