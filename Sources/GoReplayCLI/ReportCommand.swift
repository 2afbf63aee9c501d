import Replay
import ReplayReport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `goreplay report FILE…`: what the replay target did with the recorded
/// requests, from `.gor` files holding types 1, 2 and 3.
///
/// Exit status: 0 report written, 1 a file could not be read or written,
/// 2 bad command line.
struct ReportCommand {
    struct Options: Equatable {
        var files: [String] = []
        var json = false
        var htmlPath: String?
        var report = ReportOptions()
        var endpointRows = 20

        static func == (lhs: Options, rhs: Options) -> Bool {
            lhs.files == rhs.files && lhs.json == rhs.json && lhs.htmlPath == rhs.htmlPath
                && lhs.endpointRows == rhs.endpointRows
        }
    }

    static let usage = """
        Usage: goreplay report [options] FILE...

        Joins each request (type 1) with its original (type 2) and replayed (type 3)
        response by id and reports status pairs, endpoints, latency and missing
        replies. Files are merged by timestamp (e.g. one per capture host).

          --json                      JSON on stdout instead of the text summary
          --html FILE                 also write a self-contained HTML page
          --endpoint-pattern PATTERN  count paths matching PATTERN as one endpoint
                                      (repeatable; * = one segment, final ** = any rest)
          --body-length-threshold N   report 2xx pairs whose body lengths differ by
                                      more than N bytes, or N% of the original
          --pending-window N          requests waiting for responses at most (100000);
                                      bounds memory, older ones are reported as they are
          --endpoints N               endpoint rows in the text summary (20)

        Exit status: 0 report written, 1 a file could not be read or written,
        2 bad command line.
        """

    enum UsageError: Error, CustomStringConvertible {
        case noFiles
        case unknownFlag(String)
        case missingValue(String)
        case badNumber(String, String)
        case report(ReportError)

        var description: String {
            switch self {
            case .noFiles:
                "report: no input files; usage: goreplay report [options] FILE... (see goreplay report --help)"
            case .unknownFlag(let flag): "report: unknown option \(flag) (see goreplay report --help)"
            case .missingValue(let flag): "report: \(flag) needs a value (see goreplay report --help)"
            case .badNumber(let flag, let text): "report: \(flag) \"\(text)\": give a positive whole number"
            case .report(let error): "report: \(error)"
            }
        }
    }

    /// nil for `--help`.
    static func parse(_ arguments: [String]) throws(UsageError) -> Options? {
        var options = Options()
        var index = 0
        var patterns: [EndpointNormaliser.Pattern] = []
        func value(_ flag: String, inline: String?) throws(UsageError) -> String {
            if let inline { return inline }
            index += 1
            guard index < arguments.count else { throw .missingValue(flag) }
            return arguments[index]
        }
        func positive(_ flag: String, _ text: String) throws(UsageError) -> Int {
            guard let number = Int(text), number > 0 else { throw .badNumber(flag, text) }
            return number
        }
        var onlyFiles = false
        while index < arguments.count {
            let argument = arguments[index]
            if onlyFiles || !argument.hasPrefix("-") || argument == "-" {
                options.files.append(argument)
                index += 1
                continue
            }
            if argument == "--" {
                onlyFiles = true
                index += 1
                continue
            }
            var name = String(argument.drop { $0 == "-" })
            var inline: String?
            if let equals = name.firstIndex(of: "=") {
                inline = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            switch name {
            case "h", "help": return nil
            case "json": options.json = true
            case "html": options.htmlPath = try value(argument, inline: inline)
            case "endpoint-pattern":
                let text = try value(argument, inline: inline)
                do throws(ReportError) {
                    patterns.append(try EndpointNormaliser.Pattern(text))
                } catch { throw .report(error) }
            case "body-length-threshold":
                let text = try value(argument, inline: inline)
                do throws(ReportError) {
                    options.report.bodyLengthThreshold = try BodyLengthThreshold(parsing: text)
                } catch { throw .report(error) }
            case "pending-window":
                options.report.pendingWindow = try positive(argument, try value(argument, inline: inline))
            case "endpoints": options.endpointRows = try positive(argument, try value(argument, inline: inline))
            default: throw .unknownFlag(argument)
            }
            index += 1
        }
        guard !options.files.isEmpty else { throw .noFiles }
        options.report.normaliser = EndpointNormaliser(patterns: patterns)
        return options
    }

    let standardOutput: @Sendable (String) -> Void
    let standardError: @Sendable (String) -> Void

    func run(_ arguments: [String]) -> Int32 {
        let options: Options
        do {
            guard let parsed = try Self.parse(arguments) else {
                standardOutput(Self.usage)
                return 0
            }
            options = parsed
        } catch {
            standardError("goreplay: \(error)")
            return 2
        }
        do {
            var records = try MergedRecords(paths: options.files)
            var builder = ReportBuilder(options: options.report)
            while let record = try records.next() { builder.add(record) }
            var report = builder.finish(files: options.files, skippedRecords: records.skippedRecords)
            report.skippedReasons = records.skippedDescriptions
            if let htmlPath = options.htmlPath {
                try Self.write(report.html(title: "goreplay report: \(options.files.count) file(s)"), to: htmlPath)
            }
            standardOutput(options.json ? try report.json() : report.text(endpointRows: options.endpointRows))
            return 0
        } catch {
            standardError("goreplay: report: \(error)")
            return 1
        }
    }

    /// Writes through a temporary file and a rename, so a reader never sees half a page.
    static func write(_ text: String, to path: String) throws(FileIOError) {
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw FileIOError(path: path, operation: "create", code: errno) }
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { raw in
                Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 {
                let code = errno
                close(descriptor)
                unlink(temporary)
                throw FileIOError(path: path, operation: "write", code: code)
            }
            offset += written
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw FileIOError(path: path, operation: "rename to", code: code)
        }
    }
}
