package Taskmgr::Load;

# Shared helpers of the operational tests (t/5xx): a user with a workspace
# and tasks, requests left in flight on a raw socket, row locks held from a
# psql session, and what pg_stat_activity says about the app's backends.
#
#     use Taskmgr::Load qw(setup_user create_task async_request ...);
#     my $u = setup_user($t);                    # { token, ws, user_id }
#     my $id = create_task($t, $u, 'A');
#     my $lock = lock_row($t, $id);              # BEGIN; ... FOR UPDATE
#     my $p = async_request($t, PATCH => "/v1/workspaces/$u->{ws}/tasks/$id",
#                           token => $u->{token}, body => { title => 'x' });
#     $p->answered;                              # false while pending
#     $lock->send('COMMIT;');
#     my $r = $p->wait(5);                       # { status, headers, body, json, secs }

use strict;
use warnings;

use Exporter 'import';
use IO::Socket::INET;
use IO::Select;
use JSON::PP ();
use Time::HiRes ();

our @EXPORT_OK = qw(setup_user create_task async_request timed_request
                    lock_row app_backends app_backend_pids lock_waiters
                    wait_until is_unavailable);

my $JSON = JSON::PP->new->utf8->canonical;
my $N = 0;

# setup_user($t): registers a fresh user; answers { token, ws, user_id }.
sub setup_user {
    my ($t) = @_;
    my $n = ++$N;
    my $email = sprintf "ops-%d-%d-%d\@example.com", $$, $n, int rand 1e9;
    my $r = $t->request(POST => '/v1/auth/register', body => {
        email => $email, password => 'correct horse battery staple',
        name => "Ops $n" });
    die "register: $r->{status} $r->{body}\n"
        unless $r->{status} == 201 && $r->{json} && $r->{json}{access_token};
    my $token = $r->{json}{access_token};
    my $w = $t->request(GET => '/v1/workspaces', token => $token);
    die "workspaces: $w->{status} $w->{body}\n"
        unless $w->{status} == 200 && $w->{json} && @{ $w->{json}{data} || [] };
    return { token => $token, ws => $w->{json}{data}[0]{id},
             user_id => $r->{json}{user}{id}, email => $email };
}

# create_task($t, $user, $title): the new task's id.
sub create_task {
    my ($t, $u, $title) = @_;
    my $r = $t->request(POST => "/v1/workspaces/$u->{ws}/tasks",
                        token => $u->{token}, body => { title => $title });
    die "create task: $r->{status} $r->{body}\n"
        unless $r->{status} == 201 && $r->{json} && $r->{json}{id};
    return $r->{json}{id};
}

# timed_request($t, @request_args): ($response, seconds).
sub timed_request {
    my ($t, @args) = @_;
    my $t0 = Time::HiRes::time();
    my $r = $t->request(@args);
    return ($r, Time::HiRes::time() - $t0);
}

# is_unavailable($r): a 503 problem+json with code dependency_unavailable.
sub is_unavailable {
    my ($r) = @_;
    return $r->{status} == 503
        && ($r->{headers}{'content-type'} // '') =~ m{^application/problem\+json}
        && $r->{json} && ($r->{json}{code} // '') eq 'dependency_unavailable';
}

# lock_row($t, $task_id): a psql session that holds the task's row lock
# (BEGIN; SELECT ... FOR UPDATE) until ->send('COMMIT;') or ->close.
sub lock_row {
    my ($t, $id) = @_;
    my $s = $t->psql_bg("BEGIN;\n"
        . "SELECT 'locked:' || id FROM tm.tasks WHERE id = '$id' FOR UPDATE;\n");
    $s->wait_for(qr/locked:\Q$id\E/, 10)
        or die "could not lock task $id: " . $s->output . "\n";
    return $s;
}

my $APP = "usename = 'taskmgr_app' AND datname = current_database()";

# The app role's backends on the file's database (any state).
sub app_backends {
    my ($t) = @_;
    return 0 + $t->psql("SELECT count(*) FROM pg_stat_activity WHERE $APP");
}

sub app_backend_pids {
    my ($t) = @_;
    return sort { $a <=> $b } grep { /^\d+$/ } split /\s+/,
        $t->psql("SELECT pid FROM pg_stat_activity WHERE $APP");
}

# The app's backends waiting for a lock (a request blocked on a row lock).
sub lock_waiters {
    my ($t) = @_;
    return 0 + $t->psql("SELECT count(*) FROM pg_stat_activity WHERE $APP"
                        . " AND wait_event_type = 'Lock'");
}

# wait_until($seconds, $cb, $interval): polls $cb until it answers true;
# answers its last value.
sub wait_until {
    my ($secs, $cb, $every) = @_;
    my $deadline = Time::HiRes::time() + $secs;
    while (1) {
        my $v = $cb->();
        return $v if $v || Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep($every // 0.05);
    }
}

# async_request($t, $method, $path, token => , body => \%json | $str,
#               headers => {}): sends the request on a fresh connection
# (Connection: close) and returns at once; see Taskmgr::Load::Pending.
sub async_request {
    my ($t, $method, $path, %o) = @_;
    my %h = %{ $o{headers} // {} };
    my $body = $o{body};
    if (ref $body) {
        $body = $JSON->encode($body);
        $h{'Content-Type'} //= 'application/json';
    }
    $h{Authorization} = "Bearer $o{token}" if defined $o{token};
    $h{'Content-Length'} = length $body if defined $body;
    my $req = "$method $path HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            . "Connection: close\r\nUser-Agent: taskmgr-test/1\r\n"
            . join('', map { "$_: $h{$_}\r\n" } sort keys %h)
            . "\r\n" . ($body // '');

    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                     PeerPort => $t->port, Proto => 'tcp',
                                     Timeout => 5)
        or die "async_request: connect: $!\n";
    $sock->autoflush(1);
    my $t0 = Time::HiRes::time();
    my $off = 0;
    while ($off < length $req) {
        my $n = syswrite $sock, $req, length($req) - $off, $off;
        die "async_request: write: $!\n" unless defined $n;
        $off += $n;
    }
    $sock->blocking(0);
    return bless { sock => $sock, t0 => $t0, buf => '', eof => 0,
                   what => "$method $path" }, 'Taskmgr::Load::Pending';
}

package Taskmgr::Load::Pending;

use Time::HiRes ();
use JSON::PP ();

# Reads what is there without blocking; true once the server sent anything
# (or closed the connection).
sub answered {
    my ($self) = @_;
    $self->_read(0);
    return $self->{eof} || length $self->{buf};
}

sub _read {
    my ($self, $timeout) = @_;
    return if $self->{eof};
    my $sel = IO::Select->new($self->{sock});
    return unless $sel->can_read($timeout);
    while (1) {
        my $n = sysread $self->{sock}, $self->{buf}, 65536, length $self->{buf};
        if (!defined $n) {
            last if $!{EAGAIN} || $!{EWOULDBLOCK};
            $self->{eof} = 1;    # e.g. ECONNRESET
            last;
        }
        if ($n == 0) {
            $self->{eof} = 1;
            $self->{t1} //= Time::HiRes::time();
            last;
        }
        $self->{t1} = Time::HiRes::time();
    }
}

# wait($seconds): reads until the server closes the connection (or the time
# is up: status 599) and answers { status, headers, body, json, secs } with
# secs from sending the request to the last byte.
sub wait {
    my ($self, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 10);
    while (!$self->{eof}) {
        my $left = $deadline - Time::HiRes::time();
        last if $left <= 0;
        $self->_read($left > 0.1 ? 0.1 : $left);
    }
    close $self->{sock};
    my $r = _parse($self->{buf});
    $r->{status} = 599 unless $self->{eof};
    $r->{done_at} = $self->{t1} // Time::HiRes::time();
    $r->{secs} = $r->{done_at} - $self->{t0};
    return $r;
}

sub _parse {
    my ($buf) = @_;
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my ($line, @lines) = split /\r\n/, $head // '';
    my $status = ($line // '') =~ m{^HTTP/1\.[01] (\d{3})} ? $1 : 599;
    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $h{lc $k} = exists $h{lc $k} ? "$h{lc $k}, $v" : $v;
    }
    $body //= '';
    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r\n]*\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $out .= substr($body, 0, $len, '');
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }
    my $json = $body =~ /^\s*[\[{]/ ? eval { JSON::PP::decode_json($body) } : undef;
    return { status => $status, headers => \%h, body => $body, json => $json,
             raw => $buf };
}

sub DESTROY {
    my ($self) = @_;
    close $self->{sock} if $self->{sock};
}

1;
