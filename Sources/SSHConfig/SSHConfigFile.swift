import Foundation

/// A parsed OpenSSH client configuration (`~/.ssh/config` or a `-F` file), with its
/// `Include`d files, ready to be resolved for any destination.
///
/// Every line is validated when the file is loaded, including lines in blocks that will
/// never match, as OpenSSH does, so a typo is reported once with its file and line.
public struct SSHConfigFile: Sendable {
    /// OpenSSH's limit on `Include` nesting (READCONF_MAX_DEPTH).
    public static let includeDepthLimit = 16

    /// Path of the top-level file.
    public let path: String
    /// Directives that were understood but not applied (unsupported `Match` criteria).
    public let warnings: [SSHConfigWarning]
    /// Every file read through `Include`, in the order read.
    public let includedFiles: [String]
    public let environment: SSHConfigEnvironment
    let root: ParsedFile

    /// Reads and parses `path`. Relative `Include` paths are taken from `~/.ssh`.
    public static func load(path: String, environment: SSHConfigEnvironment = .current()) throws(SSHConfigError)
        -> SSHConfigFile
    {
        let text = try readFile(path)
        return try parse(text, path: path, environment: environment)
    }

    /// Loads `~/.ssh/config`, or returns an empty configuration if there is none.
    public static func loadUserConfig(environment: SSHConfigEnvironment = .current()) throws(SSHConfigError)
        -> SSHConfigFile
    {
        let path = environment.homeDirectory + "/.ssh/config"
        if !FileManager.default.fileExists(atPath: path) {
            return try parse("", path: path, environment: environment)
        }
        return try load(path: path, environment: environment)
    }

    /// Parses configuration text; `path` is used in messages. `Include` still reads files.
    public static func parse(_ text: String, path: String, environment: SSHConfigEnvironment = .current())
        throws(SSHConfigError) -> SSHConfigFile
    {
        var parser = Parser(environment: environment)
        let root = try parser.parseFile(text: text, path: path, depth: 0)
        return SSHConfigFile(
            path: path, warnings: parser.warnings, includedFiles: parser.includedFiles,
            environment: environment, root: root)
    }

    /// Applies every matching block to `host` (the name as typed, e.g. an inventory host name).
    ///
    /// - Parameter user: a user already decided by a higher-precedence source (command line
    ///   or inventory). It wins over `User`, and it is what `Match user` and `%r` see.
    public func resolve(host: String, user: String? = nil) -> ResolvedSSHConfig {
        var state = ResolutionState(host: host, user: user, environment: environment)
        state.apply(root, active: true)
        return state.finish()
    }

    static func readFile(_ path: String) throws(SSHConfigError) -> String {
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? error.localizedDescription
            throw .unreadableFile(
                path: path, reason: FileManager.default.fileExists(atPath: path) ? reason : "no such file")
        }
    }
}

// MARK: - Parsed form

/// One keyword's value, already checked and converted.
enum Setting: Sendable {
    case hostName(String)
    case user(String)
    case port(Int)
    case identityFile(String)
    case identitiesOnly(Bool)
    case proxyJump([JumpSpec])
    case connectTimeout(Duration?)
    case userKnownHostsFiles([String])
    case strictHostKeyChecking(StrictHostKeyChecking)
    case serverAliveInterval(Duration)
    case serverAliveCountMax(Int)
    case other(keyword: String, value: String)
}

enum MatchCriterion: Sendable {
    case all
    case host([HostPattern])
    case originalHost([HostPattern])
    case user([HostPattern])
    case localUser([HostPattern])
    /// `exec`, `canonical`, `final`, `localnetwork`, `tagged`: never matches (with a warning).
    case unsupported(String)
}

enum Condition: Sendable {
    /// `Host` patterns, compared case-sensitively with the name as given.
    case host([HostPattern])
    /// `Match` criteria, all of which must hold; `negated` per criterion.
    case match([(negated: Bool, criterion: MatchCriterion)])
}

indirect enum Entry: Sendable {
    case setting(Setting, SSHConfigLocation)
    case include([ParsedFile])
}

struct Section: Sendable {
    /// `nil` for lines before the file's first `Host`/`Match`.
    var condition: Condition?
    var entries: [Entry] = []
}

struct ParsedFile: Sendable {
    var path: String
    var sections: [Section]
}

// MARK: - Parser

struct Parser {
    let environment: SSHConfigEnvironment
    var warnings: [SSHConfigWarning] = []
    var includedFiles: [String] = []

    init(environment: SSHConfigEnvironment) {
        self.environment = environment
    }

    mutating func parseFile(text: String, path: String, depth: Int) throws(SSHConfigError) -> ParsedFile {
        var sections = [Section(condition: nil)]
        var lineNumber = 0
        // "\r\n" is a single Character in Swift, so CRLF files need their own separator.
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            lineNumber += 1
            let location = SSHConfigLocation(path: path, line: lineNumber)
            guard let line = try Lexer.lex(rawLine, at: location) else { continue }
            switch line.keyword {
            case "host":
                guard !line.arguments.isEmpty else {
                    throw .syntax(location, message: "Host needs at least one pattern")
                }
                sections.append(Section(condition: .host(line.arguments.map(HostPattern.init))))
            case "match":
                sections.append(Section(condition: try parseMatch(line)))
            case "include":
                guard !line.arguments.isEmpty else {
                    throw .syntax(location, message: "Include needs at least one file")
                }
                var files: [ParsedFile] = []
                for pattern in line.arguments {
                    for file in try expandInclude(pattern, at: location) {
                        if depth + 1 > SSHConfigFile.includeDepthLimit {
                            throw .includeTooDeep(location, limit: SSHConfigFile.includeDepthLimit)
                        }
                        includedFiles.append(file)
                        let text = try SSHConfigFile.readFile(file)
                        files.append(try parseFile(text: text, path: file, depth: depth + 1))
                    }
                }
                sections[sections.count - 1].entries.append(.include(files))
            default:
                let setting = try Self.parseSetting(line)
                sections[sections.count - 1].entries.append(.setting(setting, location))
            }
        }
        return ParsedFile(path: path, sections: sections)
    }

    /// Relative paths are in ~/.ssh (this reads user configuration files); globs are expanded
    /// and sorted like glob(3). No match is not an error, as in OpenSSH.
    func expandInclude(_ pattern: String, at location: SSHConfigLocation) throws(SSHConfigError) -> [String] {
        var full = environment.expandTilde(pattern)
        if !full.hasPrefix("/") {
            full = environment.homeDirectory + "/.ssh/" + full
        }
        var result = glob_t()
        defer { globfree(&result) }
        let status = glob(full, 0, nil, &result)
        if status == GLOB_NOMATCH { return [] }
        guard status == 0 else {
            throw .syntax(location, message: "cannot expand Include pattern '\(pattern)'")
        }
        var paths: [String] = []
        for index in 0..<Int(result.gl_pathc) {
            if let entry = result.gl_pathv[index] { paths.append(String(cString: entry)) }
        }
        return paths
    }

    mutating func parseMatch(_ line: ConfigLine) throws(SSHConfigError) -> Condition {
        let location = line.location
        guard !line.arguments.isEmpty else {
            throw .syntax(location, message: "Match needs at least one criterion")
        }
        var criteria: [(negated: Bool, criterion: MatchCriterion)] = []
        var index = 0
        while index < line.arguments.count {
            var name = line.arguments[index].lowercased()
            index += 1
            let negated = name.hasPrefix("!")
            if negated { name.removeFirst() }
            func argument() throws(SSHConfigError) -> String {
                guard index < line.arguments.count else {
                    throw .invalidCondition(location, message: "Match \(name) needs an argument")
                }
                defer { index += 1 }
                return line.arguments[index]
            }
            func patterns() throws(SSHConfigError) -> [HostPattern] {
                try argument().split(separator: ",").map { HostPattern(String($0)) }
            }
            switch name {
            case "all": criteria.append((negated, .all))
            case "host": criteria.append((negated, .host(try patterns())))
            case "originalhost": criteria.append((negated, .originalHost(try patterns())))
            case "user": criteria.append((negated, .user(try patterns())))
            case "localuser": criteria.append((negated, .localUser(try patterns())))
            case "canonical", "final":
                criteria.append((negated, .unsupported(name)))
            case "exec", "localnetwork", "tagged":
                _ = try argument()
                criteria.append((negated, .unsupported(name)))
            default:
                throw .invalidCondition(location, message: "unsupported Match criterion '\(name)'")
            }
        }
        if criteria.contains(where: { if case .all = $0.criterion { return true } else { return false } }),
            criteria.count > 1
        {
            throw .invalidCondition(location, message: "'Match all' cannot be combined with other criteria")
        }
        for case (_, .unsupported(let name)) in criteria {
            warnings.append(
                SSHConfigWarning(
                    location: location,
                    message: "Match \(name) is not supported by govuk-fab; this block is never applied"))
        }
        return .match(criteria)
    }

    static func parseSetting(_ line: ConfigLine) throws(SSHConfigError) -> Setting {
        let location = line.location
        let keyword = line.spelling
        func single() throws(SSHConfigError) -> String {
            guard let first = line.arguments.first else {
                throw .syntax(location, message: "\(keyword) needs a value")
            }
            guard line.arguments.count == 1 else {
                throw .syntax(location, message: "\(keyword) takes one value, found extra arguments")
            }
            return first
        }
        func bad(_ value: String, _ reason: String) -> SSHConfigError {
            .invalidValue(location, keyword: keyword, value: value, reason: reason)
        }
        func checkTokens(_ value: String, allowed: Set<Character>) throws(SSHConfigError) {
            var iterator = value.makeIterator()
            while let c = iterator.next() {
                guard c == "%" else { continue }
                guard let token = iterator.next() else { throw bad(value, "'%' at end of value") }
                if !allowed.contains(token) { throw bad(value, "token %\(token) is not supported here") }
            }
        }
        let pathTokens: Set<Character> = ["%", "d", "h", "i", "L", "l", "n", "p", "r", "u"]

        switch line.keyword {
        case "hostname":
            let value = try single()
            try checkTokens(value, allowed: ["%", "h"])
            return .hostName(value)
        case "user":
            return .user(try single())
        case "port":
            let value = try single()
            guard let port = Int(value), (1...65535).contains(port) else {
                throw bad(value, "expected a port number from 1 to 65535")
            }
            return .port(port)
        case "identityfile":
            let value = try single()
            try checkTokens(value, allowed: pathTokens)
            return .identityFile(value)
        case "identitiesonly":
            let value = try single()
            guard let flag = parseFlag(value) else { throw bad(value, "expected yes or no") }
            return .identitiesOnly(flag)
        case "proxyjump":
            let value = try single()
            do {
                return .proxyJump(try JumpSpec.parseChain(value))
            } catch {
                throw bad(value, error.reason)
            }
        case "connecttimeout":
            let value = try single()
            if value.lowercased() == "none" { return .connectTimeout(nil) }
            guard let seconds = parseTime(value), seconds > 0 else {
                throw bad(value, "expected a time such as 10, 30s or 1m")
            }
            return .connectTimeout(.seconds(seconds))
        case "userknownhostsfile":
            guard !line.arguments.isEmpty else {
                throw .syntax(location, message: "\(keyword) needs a value")
            }
            for file in line.arguments { try checkTokens(file, allowed: pathTokens.union(["k"])) }
            return .userKnownHostsFiles(line.arguments)
        case "stricthostkeychecking":
            let value = try single()
            guard let policy = StrictHostKeyChecking(configValue: value) else {
                throw bad(value, "expected yes, no, ask, accept-new or off")
            }
            return .strictHostKeyChecking(policy)
        case "serveraliveinterval":
            let value = try single()
            guard let seconds = parseTime(value) else { throw bad(value, "expected a time such as 15 or 1m") }
            return .serverAliveInterval(.seconds(seconds))
        case "serveralivecountmax":
            let value = try single()
            guard let count = Int(value), count >= 0 else { throw bad(value, "expected a whole number") }
            return .serverAliveCountMax(count)
        default:
            return .other(keyword: line.keyword, value: line.arguments.joined(separator: " "))
        }
    }

    static func parseFlag(_ value: String) -> Bool? {
        switch value.lowercased() {
        case "yes", "true": return true
        case "no", "false": return false
        default: return nil
        }
    }

    /// OpenSSH time format: a number with an optional unit (s, m, h, d, w), concatenable
    /// as in `1h30m`. Returns seconds.
    static func parseTime(_ text: String) -> Int? {
        guard !text.isEmpty else { return nil }
        var total = 0
        var digits = ""
        for c in text {
            if c.isASCII, c.isNumber {
                digits.append(c)
                continue
            }
            guard let number = Int(digits) else { return nil }
            let scale: Int
            switch c.lowercased() {
            case "s": scale = 1
            case "m": scale = 60
            case "h": scale = 3600
            case "d": scale = 86400
            case "w": scale = 604_800
            default: return nil
            }
            let (product, overflow) = number.multipliedReportingOverflow(by: scale)
            if overflow || product > Int(Int32.max) - total { return nil }
            total += product
            digits = ""
        }
        if !digits.isEmpty {
            guard let number = Int(digits), number <= Int(Int32.max) - total else { return nil }
            total += number
        }
        return total
    }
}

// MARK: - Resolution

/// First obtained value wins for every keyword except `IdentityFile`, which accumulates.
struct ResolutionState {
    let host: String
    let commandLineUser: String?
    let environment: SSHConfigEnvironment

    var hostName: String?
    var user: String?
    var port: Int?
    var identityFiles: [String] = []
    var identitiesOnly: Bool?
    var proxyJump: [JumpSpec]?
    var connectTimeout: Duration?
    var userKnownHostsFiles: [String]?
    var strictHostKeyChecking: StrictHostKeyChecking?
    var serverAliveInterval: Duration?
    var serverAliveCountMax: Int?
    var otherOptions: [String: String] = [:]

    init(host: String, user: String?, environment: SSHConfigEnvironment) {
        self.host = host
        self.commandLineUser = user
        self.environment = environment
    }

    /// The host name as OpenSSH sees it at this point of the file (for `Match host`).
    var currentHostName: String {
        guard let hostName else { return host.lowercased() }
        return Self.expandHostName(hostName, host: host)
    }

    var currentUser: String { commandLineUser ?? user ?? environment.localUser }

    static func expandHostName(_ template: String, host: String) -> String {
        expandTokens(template, values: ["h": host]).lowercased()
    }

    mutating func apply(_ file: ParsedFile, active: Bool) {
        for section in file.sections {
            let sectionActive = active && (section.condition.map(matches) ?? true)
            for entry in section.entries {
                switch entry {
                case .setting(let setting, _):
                    if sectionActive { take(setting) }
                case .include(let files):
                    // An included file's own Host/Match lines only apply inside this block.
                    for included in files { apply(included, active: sectionActive) }
                }
            }
        }
    }

    func matches(_ condition: Condition) -> Bool {
        switch condition {
        case .host(let patterns):
            return HostPattern.listMatches(host, patterns, caseInsensitive: false)
        case .match(let criteria):
            for (negated, criterion) in criteria {
                let result: Bool
                switch criterion {
                case .all: result = true
                case .host(let patterns):
                    result = HostPattern.listMatches(currentHostName, patterns, caseInsensitive: true)
                case .originalHost(let patterns):
                    result = HostPattern.listMatches(host, patterns, caseInsensitive: true)
                case .user(let patterns):
                    result = HostPattern.listMatches(currentUser, patterns, caseInsensitive: false)
                case .localUser(let patterns):
                    result = HostPattern.listMatches(environment.localUser, patterns, caseInsensitive: false)
                case .unsupported:
                    return false
                }
                if result == negated { return false }
            }
            return true
        }
    }

    mutating func take(_ setting: Setting) {
        switch setting {
        case .hostName(let value): if hostName == nil { hostName = value }
        case .user(let value): if user == nil { user = value }
        case .port(let value): if port == nil { port = value }
        case .identityFile(let value): identityFiles.append(value)
        case .identitiesOnly(let value): if identitiesOnly == nil { identitiesOnly = value }
        case .proxyJump(let value): if proxyJump == nil { proxyJump = value }
        // `ConnectTimeout none` leaves the option unset, so a later value still applies (as in ssh).
        case .connectTimeout(let value): if connectTimeout == nil, let value { connectTimeout = value }
        case .userKnownHostsFiles(let value): if userKnownHostsFiles == nil { userKnownHostsFiles = value }
        case .strictHostKeyChecking(let value): if strictHostKeyChecking == nil { strictHostKeyChecking = value }
        case .serverAliveInterval(let value): if serverAliveInterval == nil { serverAliveInterval = value }
        case .serverAliveCountMax(let value): if serverAliveCountMax == nil { serverAliveCountMax = value }
        case .other(let keyword, let value): if otherOptions[keyword] == nil { otherOptions[keyword] = value }
        }
    }

    func finish() -> ResolvedSSHConfig {
        let finalHostName = currentHostName
        let finalUser = commandLineUser ?? user
        let localHost = environment.localHostName
        // Path tokens are expanded once everything is known, as OpenSSH does after reading config.
        let tokens: [Character: String] = [
            "d": environment.homeDirectory,
            "h": finalHostName,
            "i": String(environment.userID),
            "L": String(localHost.split(separator: ".").first ?? Substring(localHost)),
            "l": localHost,
            "n": host,
            "p": String(port ?? 22),
            "r": finalUser ?? environment.localUser,
            "u": environment.localUser,
            "k": finalHostName,
        ]
        func expandPath(_ path: String) -> String {
            Self.expandTokens(environment.expandTilde(path), values: tokens)
        }
        return ResolvedSSHConfig(
            host: host,
            hostName: finalHostName,
            user: finalUser,
            port: port,
            identityFiles: identityFiles.map(expandPath),
            identitiesOnly: identitiesOnly,
            proxyJump: proxyJump,
            connectTimeout: connectTimeout,
            userKnownHostsFiles: userKnownHostsFiles?.map(expandPath),
            strictHostKeyChecking: strictHostKeyChecking,
            serverAliveInterval: serverAliveInterval,
            serverAliveCountMax: serverAliveCountMax,
            otherOptions: otherOptions)
    }

    /// Replaces `%x` by `values[x]` and `%%` by `%`. Unknown tokens were rejected at parse time.
    static func expandTokens(_ text: String, values: [Character: String]) -> String {
        var out = ""
        var iterator = text.makeIterator()
        while let c = iterator.next() {
            guard c == "%", let token = iterator.next() else {
                out.append(c)
                continue
            }
            if token == "%" {
                out.append("%")
            } else if let value = values[token] {
                out += value
            } else {
                out.append("%")
                out.append(token)
            }
        }
        return out
    }
}
