import Foundation
import TestFleet
import Testing

/// The completion scripts the binaries generate, driven in a real bash the way bash drives them
/// on TAB: COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT set, the completion function called,
/// COMPREPLY read back.
@Suite(
    "shell completion",
    .enabled(
        if: GovukFabBinary.exists && FileManager.default.isExecutableFile(atPath: "/bin/bash"),
        "needs the built govuk-fab and bash"))
struct ShellCompletionTests {
    /// COMPREPLY for each command line (words after the program name; the last is being completed).
    static func complete(script: String, function: String, program: String, _ lines: [[String]]) throws -> [[String]] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("completion-\(UUID().uuidString)")
            .path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try script.write(toFile: directory + "/script.bash", atomically: true, encoding: .utf8)
        func quoted(_ word: String) -> String { "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        var driver = """
            source \(quoted(directory + "/script.bash"))
            drive() {
                COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
                COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
                COMPREPLY=()
                \(function) "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
                printf '%s ' "${COMPREPLY[@]}"; printf '\\n'
            }

            """
        for line in lines { driver += "drive " + ([program] + line).map(quoted).joined(separator: " ") + "\n" }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["--norc", "--noprofile", "-c", driver]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .prefix(lines.count).map { $0.split(separator: " ").map(String.init) }
    }

    /// production, then puppet_class:, then gor, then recover-goreplay, as an operator types the
    /// runbook's line. bash splits `puppet_class:g` at the colon, so `g` is completed alone.
    @Test func govukFabCompletesEnvironmentSelectorClassAndTask() async throws {
        let script = try await CLI.run(["--generate-completion-script", "bash"])
        #expect(script.status == 0, "\(script)")
        let replies = try Self.complete(
            script: script.stdout, function: "_govuk-fab", program: GovukFabBinary.path,
            [
                ["prod"],
                ["production", "pup"],
                ["production", "puppet_class", ":", "go"],
                ["production", "puppet_class:gor", "recover-go"],
                [
                    "--inventory", GovukFabBinary.repositoryRoot + "/inventories/staging.yml", "staging", "class", ":",
                    "ca",
                ],
                ["--config-dir", GovukFabBinary.repositoryRoot, "sta"],
            ])
        try #require(replies.count == 6, "\(replies)")
        #expect(replies[0].contains("production"), "\(replies[0])")
        #expect(!replies[0].contains("staging"), "filtered by the prefix: \(replies[0])")
        #expect(replies[1].contains("puppet_class:"), "\(replies[1])")
        #expect(replies[2].contains("gor"), "\(replies[2])")
        #expect(replies[3] == ["recover-goreplay"], "\(replies[3])")
        #expect(replies[4] == ["cache"], "node classes of the --inventory file: \(replies[4])")
        #expect(replies[5] == ["staging"], "\(replies[5])")
    }

    @Test func zshAndFishScriptsAreGenerated() async throws {
        for shell in ["zsh", "fish"] {
            let script = try await CLI.run(["--generate-completion-script", shell])
            #expect(script.status == 0, "\(script)")
            #expect(
                script.stdout.contains("---completion"),
                "\(shell) asks the binary for the words: \(script.stdout.prefix(300))")
        }
    }

    /// Runs `program` to its end (goreplay's informational flags return at once).
    static func runProgram(_ program: String, _ arguments: [String]) async throws -> CommandRunResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return CommandRunResult(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// goreplay's script comes from its flag table: flags with one dash or two, file names after
    /// a path flag, `report` as the first word.
    @Test func goreplayCompletesItsFlagTable() async throws {
        let binary = URL(fileURLWithPath: GovukFabBinary.path).deletingLastPathComponent().appendingPathComponent(
            "goreplay"
        ).path
        try #require(FileManager.default.isExecutableFile(atPath: binary), "goreplay is built next to govuk-fab")
        let script = try await Self.runProgram(binary, ["--generate-completion-script", "bash"])
        #expect(script.status == 0, "\(script)")
        let replies = try Self.complete(
            script: script.stdout, function: "_goreplay", program: binary,
            [
                ["-input-ra"],
                ["--output-http-st"],
                ["rep"],
                ["-versio"],
            ])
        try #require(replies.count == 4, "\(replies)")
        #expect(replies[0].contains("-input-raw") && replies[0].contains("-input-raw-track-response"), "\(replies[0])")
        #expect(replies[0].allSatisfy { $0.hasPrefix("-input-ra") }, "\(replies[0])")
        #expect(Set(replies[1]) == ["--output-http-stats", "--output-http-stats-ms"], "\(replies[1])")
        #expect(replies[2] == ["report"], "\(replies[2])")
        #expect(replies[3] == ["-version"], "\(replies[3])")
        for shell in ["zsh", "fish"] {
            let other = try await Self.runProgram(binary, ["--generate-completion-script", shell])
            #expect(other.status == 0 && other.stdout.contains("output-http-stats"), "\(other)")
        }
        let version = try await Self.runProgram(binary, ["-version"])
        #expect(version.status == 0 && version.stdout.hasPrefix("goreplay "), "\(version)")
    }
}
