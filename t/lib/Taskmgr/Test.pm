package Taskmgr::Test;

# Test harness for the taskmgr nginx modules (core Perl modules only).
#
# It combines the nginx-tests life cycle (render nginx.conf into a per-file
# directory, start nginx with -p, stop it with QUIT, check error.log) with
# Test::Nginx-style data blocks read from the test file's __DATA__.
#
#     use FindBin; use lib "$FindBin::Bin/lib";
#     use Taskmgr::Test;
#     my $t = Taskmgr::Test->new;
#     run_blocks($t);           # starts nginx, runs the blocks, $t->done
#     __DATA__
#     === TEST 1: health
#     --- request
#     GET /healthz
#     --- error_code: 200
#
# Environment (set by scripts/test.sh): TASKMGR_TEST_MODULE, TASKMGR_TEST_NGINX,
# TASKMGR_TEST_PG_PORT, TASKMGR_TEST_PG_SOCKDIR, TASKMGR_TEST_PG_DATADIR,
# TASKMGR_TEST_PG_USER, TASKMGR_TEST_REDIS_PORT, TASKMGR_TEST_SECRETS,
# TASKMGR_TEST_TEMPLATE_DB, TASKMGR_TEST_TMPDIR; optional TASKMGR_TEST_ASAN=1,
# TASKMGR_TEST_LEAVE=1, TASKMGR_TEST_VERBOSE=1, TASKMGR_TEST_REPEAT=N.

use strict;
use warnings;

use Test::More ();
use HTTP::Tiny;
use JSON::PP ();
use IO::Socket::INET;
use IO::Select;
use File::Temp ();
use File::Path ();
use File::Basename ();
use File::Spec;
use POSIX ();
use Digest::SHA ();
use MIME::Base64 ();
use Time::HiRes ();
use Exporter 'import';

our @EXPORT    = qw(run_blocks);
our @EXPORT_OK = qw(parse_blocks json_match mint_jwt base64url
                    expand_vars json_path default_server_block free_port
                    openssl_sign openssl_genkey);

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

my @REQUIRED_ENV = qw(TASKMGR_TEST_MODULE TASKMGR_TEST_PG_PORT
                      TASKMGR_TEST_PG_SOCKDIR TASKMGR_TEST_SECRETS);

my $PG_BIN = '/usr/lib/postgresql/15/bin';
my $REPO   = File::Spec->rel2abs(
    File::Basename::dirname(__FILE__) . '/../../..');

my %LIVE;    # objects not yet done, for END

sub _verbose { $ENV{TASKMGR_TEST_VERBOSE} }

###########################################################################
# Construction and teardown

# new(%opts):
#   name          used in the database name (default: the .t file name)
#   expect_alerts [qr/.../, ...] or 1: [alert]/[crit]/[emerg] lines in
#                 error.log that are expected (1: any)
#   offline       no environment, no database: for unit tests of the harness
sub new {
    my ($class, %opts) = @_;

    my $self = bless {
        opts    => \%opts,
        vars    => {},
        pid     => $$,
        running => 0,
        started_conf => undef,
        default_conf => undef,
        must_die_n   => 0,
    }, $class;

    if (!$opts{offline}) {
        my @missing = grep { !defined $ENV{$_} || $ENV{$_} eq '' } @REQUIRED_ENV;
        if (@missing) {
            Test::More::plan(skip_all =>
                "no test environment (@missing unset): run `make test`");
        }
        if (!-f $ENV{TASKMGR_TEST_MODULE}) {
            Test::More::plan(skip_all =>
                "module $ENV{TASKMGR_TEST_MODULE} does not exist");
        }
    }

    my $name = $opts{name};
    if (!defined $name) {
        $name = File::Basename::basename($0);
        $name =~ s/\.t$//;
    }
    $name = lc $name;
    $name =~ s/[^a-z0-9]+/_/g;
    $name =~ s/^_+|_+$//g;
    $name = substr($name, 0, 40);

    $self->{name}   = $name;
    $self->{rand}   = unpack('H*', join '', map { chr int rand 256 } 1 .. 8);

    my $base = $ENV{TASKMGR_TEST_TMPDIR} // File::Spec->tmpdir;
    $self->{dir} = File::Temp::tempdir("t-$name-XXXXXX", DIR => $base,
                                       CLEANUP => 0);
    # nginx workers (nobody/taskmgr) must enter it; under ASAN they also
    # write their reports into it.
    chmod($ENV{TASKMGR_TEST_ASAN} ? 01777 : 0755, $self->{dir});

    $self->{module}     = $ENV{TASKMGR_TEST_MODULE} // '/nonexistent.so';
    $self->{nginx}      = $ENV{TASKMGR_TEST_NGINX} || '/usr/sbin/nginx';
    $self->{pg_port}    = $ENV{TASKMGR_TEST_PG_PORT} // 5432;
    $self->{pg_sockdir} = $ENV{TASKMGR_TEST_PG_SOCKDIR} // '/nonexistent';
    $self->{pg_datadir} = $ENV{TASKMGR_TEST_PG_DATADIR};
    $self->{pg_user}    = $ENV{TASKMGR_TEST_PG_USER};
    $self->{redis_port} = $ENV{TASKMGR_TEST_REDIS_PORT} // 6379;
    $self->{secrets}    = $ENV{TASKMGR_TEST_SECRETS} // $self->{dir};
    $self->{template}   = $ENV{TASKMGR_TEST_TEMPLATE_DB} || 'taskmgr_tpl';
    $self->{port}       = free_port();
    $self->{db}         = substr("t_${name}_$$", 0, 63);

    if (!$opts{offline}) {
        $LIVE{"$self"} = $self;
        $self->_psql('postgres',
            qq{DROP DATABASE IF EXISTS "$self->{db}" WITH (FORCE)});
        $self->_psql('postgres',
            qq{CREATE DATABASE "$self->{db}" TEMPLATE "$self->{template}"});
        $self->{db_created} = 1;
    }

    return $self;
}

sub dir        { $_[0]{dir} }
sub port       { $_[0]{port} }
sub db         { $_[0]{db} }
sub pg_port    { $_[0]{pg_port} }
sub redis_port { $_[0]{redis_port} }
sub secrets    { $_[0]{secrets} }
sub url        { "http://127.0.0.1:$_[0]{port}" . ($_[1] // '/') }

sub var {
    my ($self, $name, @val) = @_;
    $self->{vars}{$name} = $val[0] if @val;
    return $self->{vars}{$name};
}

# done: stop nginx, add the two log tests, drop the database, remove the
# directory; then done_testing() unless the file declared a plan.
sub done {
    my ($self) = @_;
    return if $self->{done} || $$ != $self->{pid};
    $self->{done} = 1;
    delete $LIVE{"$self"};

    my $graceful = $self->stop;

    my $tb = Test::More->builder;
    my $log = $self->error_log;
    my $expect = $self->{opts}{expect_alerts};
    my @bad = grep {
        my $line = $_;
        !(ref $expect eq 'ARRAY' ? grep { $line =~ $_ } @$expect : $expect)
    } grep { /\[(?:alert|crit|emerg)\]/ } split /\n/, $log;
    $tb->ok(!@bad && $graceful, 'no [alert], [crit] or [emerg] in error.log')
        or $tb->diag(join "\n", ($graceful ? () : 'nginx did not exit on QUIT'),
                     @bad[0 .. ($#bad > 19 ? 19 : $#bad)]);

    my (@asan, @ignored);
    for my $f (glob("$self->{dir}/asan.*")) {
        next unless -s $f;
        my $txt = _slurp($f);
        my @ours = _asan_relevant($txt);
        if (@ours) {
            push @asan, "$f:\n" . join("\n", @ours);
        } else {
            push @ignored, $f;
        }
    }
    for my $f ("$self->{dir}/error.log", "$self->{dir}/nginx.stderr") {
        push @asan, "$f mentions a Sanitizer" if -f $f && _slurp($f) =~ /Sanitizer/;
    }
    Test::More::note("ignored leak reports without a frame of the module: @ignored")
        if @ignored;
    $tb->ok(!@asan, 'no AddressSanitizer report')
        or $tb->diag(substr(join("\n", @asan), 0, 8000));

    $self->_cleanup;

    $tb->done_testing unless $tb->has_plan || _tb_meta()->{Done_Testing};
}

# The parts of a sanitizer log that count: any AddressSanitizer error; for
# LeakSanitizer, the leaks with a frame in the module.  Stock nginx leaks
# some start-up allocations in every worker (connections, events: no module
# frame in their stacks); those are ignored.  The asan build links the module
# with -z nodelete so that its frames stay symbolizable at exit.
sub _asan_relevant {
    my ($txt) = @_;
    return ($txt) if $txt =~ /ERROR: AddressSanitizer/ || $txt !~ /LeakSanitizer/;
    my @leaks = $txt =~ /^((?:Direct|Indirect) leak of .*?)(?=^(?:Direct|Indirect) leak|^SUMMARY|\z)/msg;
    # Ours: a frame naming the module, a frame with a C source line (only
    # the module has debug info here), or "<unknown module>" (a dlclose()d
    # .so, i.e. a module).
    return grep {
        /ngx_http_taskmgr_module\.so|ngx_taskmgr_module\/|\bngx_http_taskmgr_|<unknown module>/
            || /^\s*#\d+ 0x[0-9a-f]+ in \S+ \/\S+\.[ch]:\d+/m
    } @leaks;
}

# Test::Builder's per-hub state (Done_Testing, Skip_All).
sub _tb_meta {
    my $hub = eval { Test::More->builder->{Stack}->top };
    return ($hub && $hub->meta('Test::Builder', {})) || {};
}

sub _cleanup {
    my ($self) = @_;
    if ($self->{redis_stopped}) {
        eval { $self->redis_start };
        Test::More::diag("restarting Redis: $@") if $@;
    }
    if ($self->{db_created}) {
        if ($self->{pg_stopped}) {
            eval { $self->pg_start };
        }
        eval {
            $self->_psql('postgres',
                qq{DROP DATABASE IF EXISTS "$self->{db}" WITH (FORCE)});
        };
        Test::More::diag("dropping $self->{db}: $@") if $@;
    }
    if ($ENV{TASKMGR_TEST_LEAVE}) {
        Test::More::diag("left $self->{dir} and database $self->{db}");
    } else {
        File::Path::remove_tree($self->{dir});
    }
}

END {
    my $status = $?;
    for my $t (values %LIVE) {
        next if $$ != $t->{pid};
        my $tb = Test::More->builder;
        my $meta = _tb_meta();
        if ($meta->{Done_Testing} || $meta->{Skip_All}) {
            # Too late for tests: just stop and clean up.
            eval { $t->stop };
            $t->{done} = 1;
            delete $LIVE{"$t"};
            eval { $t->_cleanup };
        } else {
            eval { $t->done };
            Test::More::diag("teardown: $@") if $@;
        }
    }
    $? = $status;
}

sub DESTROY {
    my ($self) = @_;
    return unless $self->{opts}{offline} && $$ == $self->{pid};
    File::Path::remove_tree($self->{dir}) if $self->{dir} && -d $self->{dir};
}

###########################################################################
# nginx.conf

# The contents of the server {} block of lua-free-conf/taskmgr.conf, without
# its listen lines and comments.
sub default_server_block {
    my ($file) = @_;
    $file //= "$REPO/lua-free-conf/taskmgr.conf";
    my $text = _slurp($file);
    $text =~ s/#[^\n]*//g;
    $text =~ /\bserver\s*\{/g or die "no server block in $file\n";
    my ($start, $depth, $pos) = (pos($text), 1, pos($text));
    while ($depth > 0) {
        $pos < length $text or die "unbalanced braces in $file\n";
        my $c = substr($text, $pos++, 1);
        $depth++ if $c eq '{';
        $depth-- if $c eq '}';
    }
    my $body = substr($text, $start, $pos - $start - 1);
    $body =~ s/^\s*listen\b[^;]*;[ \t]*\n?//mg;
    $body =~ s/^\s*\n//mg;
    return $body;
}

sub _mentions {
    my ($text, $directive) = @_;
    return defined $text && $text =~ /(?<![\w-])\Q$directive\E(?![\w-])/;
}

sub _subst_placeholders {
    my ($self, $text) = @_;
    return $text unless defined $text;
    my %p = (
        PORT       => $self->{port},
        TESTDIR    => $self->{dir},
        PG_PORT    => $self->{pg_port},
        PG_DB      => $self->{db},
        PG_SOCKDIR => $self->{pg_sockdir},
        PG_DSN     => $self->pg_dsn,
        REDIS_PORT => $self->{redis_port},
        SECRETS    => $self->{secrets},
        MODULE     => $self->{module},
    );
    $text =~ s/%%([A-Z_]+)%%/exists $p{$1} ? $p{$1} : "%%$1%%"/ge;
    return $text;
}

sub pg_dsn {
    my ($self) = @_;
    return "hostaddr=127.0.0.1 port=$self->{pg_port} dbname=$self->{db} "
         . "user=taskmgr_app";
}

# render_conf(config => ..., http_config => ..., main_config => ...,
#             events_config => ..., workers => N, log_level => 'info')
# A default directive is left out when the section it belongs to mentions
# its name anywhere (a comment such as "# no taskmgr_pg_dsn" is enough).
sub render_conf {
    my ($self, %c) = @_;

    my $main   = $c{main_config} // '';
    my $events = $c{events_config} // '';
    my $http   = $c{http_config} // '';
    my $server = $c{config} // default_server_block();
    my $workers = $c{workers} // 1;
    my $level   = $c{log_level} // 'info';
    my $d  = $self->{dir};
    my $s  = $self->{secrets};

    my @main_defaults = (
        [worker_processes => "worker_processes $workers;"],
        [thread_pool      => 'thread_pool taskmgr_pw threads=2;'],
    );
    my @http_defaults = (
        [client_max_body_size    => 'client_max_body_size 2m;'],
        [client_body_buffer_size => 'client_body_buffer_size 1m;'],
        [taskmgr_pg_dsn          => 'taskmgr_pg_dsn "' . $self->pg_dsn . '";'],
        [taskmgr_pg_password_file => "taskmgr_pg_password_file $s/pg_app_password;"],
        [taskmgr_pg_pool_size    => 'taskmgr_pg_pool_size 4;'],
        [taskmgr_redis           => 'taskmgr_redis 127.0.0.1:%%REDIS_PORT%%;'],
        [taskmgr_password_thread_pool => 'taskmgr_password_thread_pool taskmgr_pw;'],
        [taskmgr_argon2          => 'taskmgr_argon2 t_cost=1 m_cost=8192 parallelism=1;'],
        [taskmgr_auth_jwt_key_file => "taskmgr_auth_jwt_key_file $s/jwt.key;"],
        [taskmgr_auth_jwt_issuer => 'taskmgr_auth_jwt_issuer taskmgr;'],
        [taskmgr_auth_jwt_audience => 'taskmgr_auth_jwt_audience taskmgr-api;'],
        [taskmgr_request_id      => 'taskmgr_request_id on;'],
        [taskmgr_attachment_path => "taskmgr_attachment_path $d/attachments;"],
        [taskmgr_attachment_url_key_file =>
            "taskmgr_attachment_url_key_file $s/attachment_url.key;"],
    );

    my $conf = <<"EOF";
# rendered by t/lib/Taskmgr/Test.pm for $0
load_module $self->{module};
error_log $d/error.log $level;
pid $d/nginx.pid;
daemon off;
EOF
    $conf .= "$_->[1]\n" for grep { !_mentions($main, $_->[0]) } @main_defaults;
    $conf .= "$main\n" if $main ne '';
    $conf .= <<"EOF";
events {
    worker_connections 1024;
$events
}
http {
    log_format taskmgr_test '\$remote_addr "\$request_method \$uri" \$status '
                            '\$body_bytes_sent \$request_time rid=\$taskmgr_request_id';
    access_log $d/access.log taskmgr_test;
    client_body_temp_path $d/tmp_body;
    proxy_temp_path $d/tmp_proxy;
    fastcgi_temp_path $d/tmp_fastcgi;
    uwsgi_temp_path $d/tmp_uwsgi;
    scgi_temp_path $d/tmp_scgi;
EOF
    $conf .= "    $_->[1]\n" for grep { !_mentions($http, $_->[0]) } @http_defaults;
    $conf .= "$http\n" if $http ne '';
    $conf .= <<"EOF";
    server {
        listen 127.0.0.1:$self->{port};
$server
    }
}
EOF
    return $self->_subst_placeholders($conf);
}

###########################################################################
# nginx life cycle

# start(%conf): render nginx.conf, start nginx, wait until it listens.  Dies
# (with the log) when nginx does not come up.  The first start's %conf is the
# file's default for run_blocks.
sub start {
    my ($self, %c) = @_;
    my ($ok, $err) = $self->try_start(%c);
    die "nginx did not start:\n$err\n" unless $ok;
    return $self;
}

# try_start(%conf): like start, returns (1) or (0, error text).
sub try_start {
    my ($self, %c) = @_;
    local $?;    # never clobber the exit status of the test file
    $self->stop if $self->{running};
    $self->{default_conf} //= {%c};

    my $d = $self->{dir};
    _spew("$d/nginx.conf", $self->render_conf(%c));
    unlink "$d/nginx.pid";

    my $stderr_off = -s "$d/nginx.stderr" // 0;
    my $log_off    = -s "$d/error.log" // 0;

    # nginx runs with `daemon off` (master on) as our child: no daemonizing
    # parent (whose exit LeakSanitizer would report), and waitpid works.
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$d/nginx.stderr";
        open STDERR, '>>', "$d/nginx.stderr";
        POSIX::setpgid(0, 0);    # a terminal's Ctrl-C goes to prove, not here
        $self->_asan_env;
        chdir $d;
        exec($self->{nginx}, '-p', "$d/", '-c', "$d/nginx.conf")
            or POSIX::_exit(127);
    }
    $self->{child} = $pid;

    my $deadline = Time::HiRes::time() + 15;
    my $err;
    while (1) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            $err = 'nginx exited with ' . _wait_status($?);
            delete $self->{child};
            last;
        }
        my $master = $self->_master_pid;
        last if $master && $master == $pid && _port_open($self->{port});
        if (Time::HiRes::time() > $deadline) {
            $err = "nginx did not listen on port $self->{port} within 15s";
            $self->_reap($pid, 'KILL', 5);
            last;
        }
        Time::HiRes::sleep(0.02);
    }
    if ($err) {
        $self->{running} = 0;
        my $out = _slurp_from("$d/nginx.stderr", $stderr_off)
                . _slurp_from("$d/error.log", $log_off);
        return (0, "$err\n$out");
    }
    $self->{running} = 1;
    $self->{started_conf} = {%c};
    return (1);
}

sub _asan_env {
    my ($self) = @_;
    return unless $ENV{TASKMGR_TEST_ASAN};
    my $lib = `gcc -print-file-name=libasan.so`;
    chomp $lib;
    die "libasan.so not found (gcc -print-file-name)\n" unless $lib =~ m{/};
    $ENV{LD_PRELOAD} = $lib;
    # fast_unwind_on_malloc=0: full allocation stacks through the nginx
    # binary (built without frame pointers), needed to tell our leaks apart.
    $ENV{ASAN_OPTIONS} = "detect_leaks=1:log_path=$self->{dir}/asan:abort_on_error=0"
        . ':fast_unwind_on_malloc=0:malloc_context_size=40'
        . ($ENV{TASKMGR_TEST_ASAN_OPTIONS} ? ":$ENV{TASKMGR_TEST_ASAN_OPTIONS}" : '');
}

sub _master_pid {
    my ($self) = @_;
    my $f = "$self->{dir}/nginx.pid";
    return undef unless -f $f;
    my $pid = _slurp($f);
    return $pid =~ /^(\d+)/ ? $1 : undef;
}

# stop: QUIT (graceful), wait up to 20s for the master to exit, then TERM and
# KILL.  Returns true when nginx stopped on QUIT (or was not running).
sub stop {
    my ($self) = @_;
    local $?;
    return 1 unless $self->{running};
    $self->{running} = 0;
    my $pid = delete $self->{child} or return 1;
    return 1 if $self->_reap($pid, 'QUIT', 20);
    Test::More::diag("nginx (pid $pid) did not exit within 20s of QUIT");
    $self->_reap($pid, 'TERM', 5) or $self->_reap($pid, 'KILL', 5);
    return 0;
}

# _reap($child, $signal, $seconds): signal our nginx child, wait for it.
sub _reap {
    my ($self, $pid, $sig, $secs) = @_;
    local $?;
    kill $sig, $pid;
    my $deadline = Time::HiRes::time() + $secs;
    while (Time::HiRes::time() < $deadline) {
        my $w = waitpid($pid, POSIX::WNOHANG());
        return 1 if $w == $pid || $w == -1;
        Time::HiRes::sleep(0.02);
    }
    return 0;
}

sub _wait_status {
    my ($st) = @_;
    return 'signal ' . ($st & 127) if $st & 127;
    return 'status ' . ($st >> 8);
}

# reload(%conf): with arguments, re-render nginx.conf first; then HUP and
# wait until new workers started (or the reload failed).  Returns true when
# new workers started.
sub reload {
    my ($self, %c) = @_;
    die "nginx is not running\n" unless $self->{running};
    if (%c) {
        _spew("$self->{dir}/nginx.conf", $self->render_conf(%c));
        $self->{started_conf} = {%c};
    }
    my $off = -s "$self->{dir}/error.log" // 0;
    kill 'HUP', $self->_master_pid;
    my $deadline = Time::HiRes::time() + 15;
    while (Time::HiRes::time() < $deadline) {
        my $new = _slurp_from("$self->{dir}/error.log", $off);
        return 1 if $new =~ /start worker process/;
        return 0 if $new =~ /\[emerg\]/;
        Time::HiRes::sleep(0.05);
    }
    return 0;
}

sub error_log {
    my ($self) = @_;
    my $f = "$self->{dir}/error.log";
    return -f $f ? _slurp($f) : '';
}

sub error_log_size { -s "$_[0]{dir}/error.log" // 0 }

sub error_log_since { _slurp_from("$_[0]{dir}/error.log", $_[1] // 0) }

sub access_log {
    my ($self) = @_;
    my $f = "$self->{dir}/access.log";
    return -f $f ? _slurp($f) : '';
}

# wait_ready([$seconds]): polls GET /readyz (the shipped server block has it)
# until 200: PostgreSQL and Redis connected after a start.  True when ready.
sub wait_ready {
    my ($self, $seconds) = @_;
    my $until = Time::HiRes::time() + ($seconds // 5);
    while (Time::HiRes::time() < $until) {
        return 1 if $self->request(GET => '/readyz')->{status} == 200;
        select undef, undef, undef, 0.05;
    }
    return 0;
}

# Worker pids (children of the master), from /proc.
sub worker_pids {
    my ($self) = @_;
    my $master = $self->_master_pid or return ();
    my @pids;
    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh> // next;
        push @pids, $1 if $line =~ /^(\d+) \(.*\) [^Z] (\d+) / && $2 == $master;
    }
    return @pids;
}

###########################################################################
# HTTP

# request($method, $path, headers => {}, body => $str_or_ref, token => $jwt,
#         timeout => 10)
# -> { status, headers (lowercase keys; repeated ones joined by ", "), body,
#      json (decoded body or undef) }.  status 599: connection-level failure.
sub request {
    my ($self, $method, $path, %o) = @_;
    my %h = %{ $o{headers} // {} };
    my $body = $o{body};
    if (ref $body) {
        $body = $JSON->encode($body);
        $h{'Content-Type'} = 'application/json'
            unless grep { lc eq 'content-type' } keys %h;
    }
    $h{Authorization} = "Bearer $o{token}" if defined $o{token};

    my $http = HTTP::Tiny->new(
        timeout      => $o{timeout} // 10,
        max_redirect => 0,
        keep_alive   => 0,
        agent        => 'taskmgr-test/1',
    );
    my $res = $http->request(uc $method, $self->url($path), {
        headers => \%h,
        (defined $body ? (content => $body) : ()),
    });
    my %rh;
    while (my ($k, $v) = each %{ $res->{headers} || {} }) {
        $rh{lc $k} = ref $v ? join(', ', @$v) : $v;
    }
    my $r = { status => $res->{status}, headers => \%rh,
              body => $res->{content} // '', json => undef };
    $r->{json} = _maybe_json($r->{body}, $rh{'content-type'});
    Test::More::note("$method $path -> $r->{status} $r->{body}") if _verbose();
    return $r;
}

# raw_request($bytes, timeout => 10): sends the bytes as they are, reads until
# the server closes, parses the first response.
sub raw_request {
    my ($self, $bytes, %o) = @_;
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port},
                                     Proto => 'tcp', Timeout => 5)
        or return { status => 599, headers => {}, body => "connect: $!", json => undef };
    $sock->autoflush(1);
    print {$sock} $bytes;
    my $buf = '';
    my $deadline = Time::HiRes::time() + ($o{timeout} // 10);
    my $sel = IO::Select->new($sock);
    while (Time::HiRes::time() < $deadline) {
        next unless $sel->can_read(0.1);
        my $n = sysread $sock, $buf, 65536, length $buf;
        last unless $n;
    }
    close $sock;
    return _parse_raw_response($buf);
}

sub _parse_raw_response {
    my ($buf) = @_;
    my ($head, $body) = split /\r?\n\r?\n/, $buf, 2;
    $head //= '';
    my ($status_line, @lines) = split /\r?\n/, $head;
    my $status = ($status_line // '') =~ m{^HTTP/\d\.\d (\d{3})} ? $1 : 599;
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
    return { status => $status, headers => \%h, body => $body,
             json => _maybe_json($body, $h{'content-type'}), raw => $buf };
}

sub _maybe_json {
    my ($body, $ct) = @_;
    return undef unless defined $body && length $body;
    return undef unless ($ct // '') =~ /json/i || $body =~ /^\s*[\[{]/;
    my $v = eval { $JSON->decode($body) };
    return $v;
}

###########################################################################
# JWT

sub base64url {
    my $s = MIME::Base64::encode_base64($_[0], '');
    $s =~ tr{+/}{-_};
    $s =~ s/=+$//;
    return $s;
}

# mint_jwt($key, \%claims, alg => 'HS256', header => {...}, now => time)
# Claims exp/iat/nbf given as "+N"/"-N" become now+-N.  Defaults: iss=taskmgr,
# aud=taskmgr-api, iat=now, exp=now+300; a claim set to undef is left out.
# alg: HS256, HS384, HS512 or none (empty signature): $key is the secret;
# RS256, ES256 (raw R||S, as JWS wants) or EdDSA (Ed25519): $key is the path
# of a PEM private key, and the openssl CLI signs.  header => { kid => ... }
# adds (or, with undef, removes) header fields.
sub mint_jwt {
    my ($key, $claims, %o) = @_;
    my $now = $o{now} // time;
    my %c = (iss => 'taskmgr', aud => 'taskmgr-api', iat => '+0', exp => '+300',
             %{ $claims // {} });
    for my $k (keys %c) {
        delete $c{$k}, next unless defined $c{$k};
        if ($k =~ /^(?:exp|iat|nbf)$/ && !ref $c{$k} && $c{$k} =~ /^([+-])(\d+)$/) {
            $c{$k} = 0 + ($1 eq '+' ? $now + $2 : $now - $2);
        }
    }
    my $alg = $o{alg} // 'HS256';
    my %hdr = (alg => $alg, typ => 'JWT', %{ $o{header} // {} });
    delete $hdr{$_} for grep { !defined $hdr{$_} } keys %hdr;
    my $input = base64url($JSON->encode(\%hdr)) . '.' . base64url($JSON->encode(\%c));
    my $sig = '';
    if    ($alg eq 'HS256') { $sig = Digest::SHA::hmac_sha256($input, $key) }
    elsif ($alg eq 'HS384') { $sig = Digest::SHA::hmac_sha384($input, $key) }
    elsif ($alg eq 'HS512') { $sig = Digest::SHA::hmac_sha512($input, $key) }
    elsif ($alg =~ /^(?:RS256|ES256|EdDSA)$/) { $sig = openssl_sign($alg, $key, $input) }
    elsif ($alg ne 'none')  { die "mint_jwt: unsupported alg $alg\n" }
    return "$input." . base64url($sig);
}

# openssl_sign($alg, $pem_file, $data) -> the JWS signature bytes.
sub openssl_sign {
    my ($alg, $pem, $data) = @_;
    local $?;
    my $in = File::Temp->new(SUFFIX => '.jws');
    binmode $in;
    print {$in} $data;
    close $in;
    my @cmd = $alg eq 'EdDSA'
        ? ('openssl', 'pkeyutl', '-sign', '-rawin', '-inkey', $pem, '-in', $in->filename)
        : ('openssl', 'dgst', '-sha256', '-binary', '-sign', $pem, $in->filename);
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    binmode $out;
    local $/;
    my $sig = <$out> // '';
    close $out;
    die "openssl_sign: @cmd failed ($?)\n" if $? || $sig eq '';
    return $alg eq 'ES256' ? _ecdsa_der_to_raw($sig, 32) : $sig;
}

# DER SEQUENCE { INTEGER r, INTEGER s } -> r || s, each $n bytes.
sub _ecdsa_der_to_raw {
    my ($der, $n) = @_;
    my @b = unpack 'C*', $der;
    my $i = 0;
    die "ECDSA signature is not a DER sequence\n" unless $b[$i++] == 0x30;
    my $len = $b[$i++];
    $i += ($len & 0x7f) if $len & 0x80;
    my $raw = '';
    for (1, 2) {
        die "ECDSA signature: no INTEGER\n" unless $b[$i++] == 0x02;
        my $l = $b[$i++];
        my $v = pack 'C*', @b[$i .. $i + $l - 1];
        $i += $l;
        $v =~ s/^\x00+//;
        die "ECDSA signature: integer too long\n" if length $v > $n;
        $raw .= ("\x00" x ($n - length $v)) . $v;
    }
    return $raw;
}

# openssl_genkey($dir, $name, $type): writes $dir/$name.pem (private) and
# $dir/$name.pub.pem (public) and returns both paths.  $type: rsa (2048
# bits, or rsa:<bits>), ec (P-256, or ec:<curve>), ed25519.
sub openssl_genkey {
    my ($dir, $name, $type) = @_;
    local $?;
    my ($priv, $pub) = ("$dir/$name.pem", "$dir/$name.pub.pem");
    my @opt;
    if ($type =~ /^rsa(?::(\d+))?$/) {
        @opt = ('-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:' . ($1 // 2048));
    } elsif ($type =~ /^ec(?::(\S+))?$/) {
        @opt = ('-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:' . ($1 // 'P-256'));
    } elsif ($type eq 'ed25519') {
        @opt = ('-algorithm', 'ED25519');
    } else {
        die "openssl_genkey: unknown type $type\n";
    }
    system('openssl', 'genpkey', '-quiet', @opt, '-out', $priv) == 0
        or die "openssl genpkey $type failed\n";
    system('openssl', 'pkey', '-in', $priv, '-pubout', '-out', $pub) == 0
        or die "openssl pkey -pubout failed\n";
    chmod 0644, $priv, $pub;
    return ($priv, $pub);
}

# The JWT key: jwt.key's content without trailing whitespace, as raw bytes
# (the hex text itself, not the bytes it encodes).
sub jwt_key {
    my ($self) = @_;
    my $k = _slurp("$self->{secrets}/jwt.key");
    $k =~ s/\s+\z//;
    return $k;
}

sub jwt {
    my ($self, $claims, %o) = @_;
    return mint_jwt($o{key} // $self->jwt_key, $claims, %o);
}

###########################################################################
# PostgreSQL

sub _psql_cmd {
    my ($self, $db, @extra) = @_;
    return ("$PG_BIN/psql", '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1',
            '-h', $self->{pg_sockdir}, '-p', $self->{pg_port},
            '-U', 'postgres', '-d', $db, @extra);
}

sub _quote_literal {
    my ($v) = @_;
    return 'NULL' unless defined $v;
    $v =~ s/'/''/g;
    return "'$v'";
}

# psql($sql, @bind): runs $sql in the file's database as postgres; $1, $2, ...
# are replaced by the bound values as quoted literals (undef: NULL).  Returns
# stdout without surrounding whitespace; dies on error.
sub psql {
    my ($self, $sql, @bind) = @_;
    if (@bind) {
        $sql =~ s/(?<![\w\$])\$(\d+)(?!\w)/
            $1 >= 1 && $1 <= @bind ? _quote_literal($bind[$1 - 1]) : "\$$1"/ge;
    }
    return $self->_psql($self->{db}, $sql);
}

sub _psql {
    my ($self, $db, $sql) = @_;
    local $?;    # never clobber the exit status of the test file
    my $in  = File::Temp->new(DIR => $self->{dir}, SUFFIX => '.sql');
    my $err = File::Temp->new(DIR => $self->{dir}, SUFFIX => '.err');
    print {$in} $sql;
    close $in;
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', $in->filename or POSIX::_exit(126);
        open STDERR, '>', $err->filename or POSIX::_exit(126);
        exec $self->_psql_cmd($db) or POSIX::_exit(127);
    }
    local $/;
    my $stdout = <$out> // '';
    close $out;
    my $rc = $?;
    my $stderr = _slurp($err->filename);
    die "psql failed ($rc): $stderr\nSQL: $sql\n" if $rc;
    $stdout =~ s/^\s+|\s+\z//g;
    return $stdout;
}

# psql_bg($sql): a psql session kept open (stdin is a pipe), e.g. to hold row
# locks.  Returns an object with ->send($sql), ->output, ->wait_for(qr//, $s)
# and ->close.
sub psql_bg {
    my ($self, $sql) = @_;
    my $outfile = "$self->{dir}/psql_bg." . ++$self->{bg_n} . '.out';
    my $pid = open(my $in, '|-') // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>', $outfile or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec $self->_psql_cmd($self->{db}) or POSIX::_exit(127);
    }
    my $old = select $in; $| = 1; select $old;
    my $s = bless { in => $in, pid => $pid, out => $outfile },
                  'Taskmgr::Test::PsqlSession';
    $s->send($sql) if defined $sql;
    return $s;
}

sub _as_pg_user {
    my ($self, @cmd) = @_;
    my $u = $self->{pg_user};
    if ($> == 0 && defined $u && $u ne 'root') {
        return ('runuser', '-u', $u, '--', @cmd);
    }
    return @cmd;
}

sub _pg_ctl {
    my ($self, @args) = @_;
    local $?;    # never clobber the exit status of the test file
    my $dd = $self->{pg_datadir} or die "TASKMGR_TEST_PG_DATADIR is not set\n";
    my @cmd = $self->_as_pg_user("$PG_BIN/pg_ctl", '-D', $dd, '-w', '-t', '60', @args);
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        chdir '/';
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    die "pg_ctl @args failed\n" if $?;
}

sub pg_stop {
    my ($self) = @_;
    $self->_pg_ctl('-m', 'fast', 'stop');
    $self->{pg_stopped} = 1;
}

sub pg_start {
    my ($self) = @_;
    my $log = File::Basename::dirname($self->{pg_datadir}) . '/pg.log';
    $self->_pg_ctl('-l', $log, 'start');
    $self->{pg_stopped} = 0;
}

sub pg_restart {
    my ($self) = @_;
    $self->pg_stop;
    $self->pg_start;
}

###########################################################################
# Redis (the test stack's: scripts/stack.sh starts it in the directory
# beside the PostgreSQL data directory, as the PostgreSQL OS user when root)

# redis_cli(@args): runs redis-cli against the stack's Redis; returns stdout
# without the final newline.  Pass '-a', $password, '--no-auth-warning'
# first while a password is required.
sub redis_cli {
    my ($self, @args) = @_;
    local $?;    # never clobber the exit status of the test file
    my $pid = open(my $out, '-|') // die "fork: $!";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec 'redis-cli', '-h', '127.0.0.1', '-p', $self->{redis_port}, @args
            or POSIX::_exit(127);
    }
    local $/;
    my $stdout = <$out> // '';
    close $out;
    $stdout =~ s/\n\z//;
    return $stdout;
}

sub _redis_dir {
    my ($self) = @_;
    my $dd = $self->{pg_datadir} or die "TASKMGR_TEST_PG_DATADIR is not set\n";
    return File::Basename::dirname($dd);
}

# redis_stop: SHUTDOWN NOSAVE, then wait until the port is closed.
sub redis_stop {
    my ($self) = @_;
    $self->{redis_stopped} = 1;
    $self->redis_cli('shutdown', 'nosave');
    my $deadline = Time::HiRes::time() + 10;
    while (_port_open($self->{redis_port})) {
        die "redis_stop: Redis still listens on $self->{redis_port}\n"
            if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.05);
    }
}

# redis_start: starts the stack's Redis again with scripts/stack.sh's
# options, ports and directory; waits until it answers PING.
sub redis_start {
    my ($self) = @_;
    local $?;
    my $sd = $self->_redis_dir;
    # Redis (not root) writes them in a directory it does not own.
    for my $f ("$sd/redis.pid", "$sd/redis.log") {
        next if -e $f;
        open my $fh, '>', $f or die "$f: $!\n";
        close $fh;
        if ($> == 0 && defined $self->{pg_user} && $self->{pg_user} ne 'root') {
            my ($uid, $gid) = (getpwnam $self->{pg_user})[2, 3];
            chown $uid, $gid, $f if defined $uid;
        }
    }
    my @cmd = $self->_as_pg_user('redis-server',
        '--bind', '127.0.0.1', '--port', $self->{redis_port},
        '--save', '', '--appendonly', 'no', '--daemonize', 'yes',
        '--pidfile', "$sd/redis.pid", '--logfile', "$sd/redis.log",
        '--dir', "$sd/redis");
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        chdir "$sd/redis" or chdir '/';
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        exec @cmd or POSIX::_exit(127);
    }
    waitpid $pid, 0;
    die "redis-server failed to start\n" if $?;
    my $deadline = Time::HiRes::time() + 10;
    until ($self->redis_cli('ping') eq 'PONG') {
        die "redis_start: no PONG on port $self->{redis_port}\n"
            if Time::HiRes::time() > $deadline;
        Time::HiRes::sleep(0.05);
    }
    $self->{redis_stopped} = 0;
}

###########################################################################
# Data blocks

# parse_blocks($text) -> [ { name, n, line, sections => { name => value } } ]
# Blocks start with "=== TEST n: name"; sections with "--- name" (value on
# the following lines) or "--- name: value".  Text before the first block is
# ignored; trailing blank lines of a value are dropped.
sub parse_blocks {
    my ($text) = @_;
    my (@blocks, $cur, $sec);
    my $ln = 0;
    for my $line (split /\n/, $text) {
        $ln++;
        if ($line =~ /^===\s*(.*?)\s*$/) {
            $cur = { name => $1, line => $ln, sections => {}, order => [] };
            ($cur->{n}) = $1 =~ /^TEST\s+(\d+)/;
            push @blocks, $cur;
            undef $sec;
            next;
        }
        next unless $cur;
        if ($line =~ /^---\s*([A-Za-z_]+)\s*(?::\s?(.*?))?\s*$/) {
            $sec = $1;
            die "line $ln: section $sec given twice in '$cur->{name}'\n"
                if exists $cur->{sections}{$sec};
            $cur->{sections}{$sec} = defined $2 ? $2 : '';
            $cur->{inline}{$sec} = defined $2;
            push @{ $cur->{order} }, $sec;
            next;
        }
        next unless defined $sec;
        if ($cur->{inline}{$sec}) {
            next if $line =~ /^\s*$/;
            die "line $ln: section '$sec' has an inline value and more lines\n";
        }
        $cur->{sections}{$sec} .= "$line\n";
    }
    for my $b (@blocks) {
        for my $v (values %{ $b->{sections} }) {
            $v =~ s/\n\s*\z/\n/;    # trailing blank lines
            $v =~ s/\n\z//;         # and the final newline
        }
    }
    return \@blocks;
}

# expand_vars($text, \%vars): {{name}} -> $vars{name}; dies on unknown names.
sub expand_vars {
    my ($text, $vars) = @_;
    return $text unless defined $text;
    $text =~ s/\{\{\s*([\w.-]+)\s*\}\}/
        exists $vars->{$1} ? $vars->{$1} : die "unknown variable {{$1}}\n"/ge;
    return $text;
}

# json_path($data, 'user.id' | 'data.0.id') -> (found, value)
sub json_path {
    my ($data, $path) = @_;
    my $cur = $data;
    for my $k (split /\./, $path) {
        if (ref $cur eq 'HASH' && exists $cur->{$k}) {
            $cur = $cur->{$k};
        } elsif (ref $cur eq 'ARRAY' && $k =~ /^-?\d+$/ && $k < @$cur && -$k <= @$cur) {
            $cur = $cur->[$k];
        } else {
            return (0);
        }
    }
    return (1, $cur);
}

sub _leaf_str {
    my ($v) = @_;
    return $JSON->encode($v);
}

# json_match($got, $expected, like => 0|1) -> (ok, message)
# Exact (like => 0): same structure, same keys, equal leaves (compared by
# their canonical JSON: 1 and "1" differ, true and 1 differ).
# Like (like => 1): keys absent from $expected are ignored; arrays are
# compared on the expected length (an expected [] requires an empty array);
# string leaves "/regex/" match the got scalar as a regex.
sub json_match {
    my ($got, $exp, %o) = @_;
    my @msg;
    _json_cmp($got, $exp, $o{like} ? 1 : 0, '$', \@msg);
    return (!@msg, join("\n", @msg));
}

sub _json_cmp {
    my ($got, $exp, $like, $path, $msg) = @_;
    return if @$msg >= 10;
    if (ref $exp eq 'HASH') {
        if (ref $got ne 'HASH') {
            push @$msg, "$path: expected an object, got " . _leaf_str($got);
            return;
        }
        for my $k (sort keys %$exp) {
            if (!exists $got->{$k}) {
                push @$msg, "$path.$k: missing";
                next;
            }
            _json_cmp($got->{$k}, $exp->{$k}, $like, "$path.$k", $msg);
        }
        if (!$like) {
            for my $k (sort grep { !exists $exp->{$_} } keys %$got) {
                push @$msg, "$path.$k: unexpected key";
            }
        }
        return;
    }
    if (ref $exp eq 'ARRAY') {
        if (ref $got ne 'ARRAY') {
            push @$msg, "$path: expected an array, got " . _leaf_str($got);
            return;
        }
        if ((!$like || !@$exp) && @$got != @$exp) {
            push @$msg, "$path: expected " . scalar(@$exp) . " elements, got " . scalar(@$got);
            return;
        }
        if (@$got < @$exp) {
            push @$msg, "$path: expected at least " . scalar(@$exp)
                      . " elements, got " . scalar(@$got);
            return;
        }
        _json_cmp($got->[$_], $exp->[$_], $like, "$path\[$_\]", $msg) for 0 .. $#$exp;
        return;
    }
    if ($like && defined $exp && !ref $exp && $exp =~ m{^/(.*)/\z}s && _is_string($exp)) {
        my $re = $1;
        if (!defined $got || ref $got && !JSON::PP::is_bool($got)) {
            push @$msg, "$path: expected a value matching /$re/, got " . _leaf_str($got);
            return;
        }
        my $s = JSON::PP::is_bool($got) ? ($got ? 'true' : 'false') : "$got";
        push @$msg, "$path: " . _leaf_str($got) . " does not match /$re/"
            unless $s =~ /$re/;
        return;
    }
    my ($g, $e) = (_leaf_str($got), _leaf_str($exp));
    push @$msg, "$path: expected $e, got $g" if $g ne $e;
}

sub _is_string {
    my ($v) = @_;
    require B;
    my $flags = B::svref_2object(\$v)->FLAGS;
    return ($flags & B::SVp_POK()) && !($flags & (B::SVp_IOK() | B::SVp_NOK()));
}

my %KNOWN_SECTIONS = map { $_ => 1 } qw(
    request raw_request more_headers token jwt error_code response_headers
    response_body response_body_like response_json response_json_like capture
    error_log no_error_log repeat SKIP ONLY config http_config main_config
    workers must_die wait timeout);

my @CONF_SECTIONS = qw(config http_config main_config workers);

# run_blocks($t, %default_conf): runs the caller's __DATA__ blocks (or
# blocks => $text), then $t->done unless no_done => 1.  %default_conf is the
# file's nginx configuration (config/http_config/main_config/workers); a
# block with its own config sections restarts nginx with them (merged over
# the default), the next block without them restarts with the default.
sub run_blocks {
    my ($t, %o) = @_;
    my $text = delete $o{blocks};
    my $no_done = delete $o{no_done};
    if (!defined $text) {
        my $pkg = caller;
        no strict 'refs';
        my $fh = \*{"${pkg}::DATA"};
        local $/;
        $text = <$fh>;
        die "run_blocks: no __DATA__ in $0\n" unless defined $text;
    }
    my $blocks = parse_blocks($text);
    die "run_blocks: no blocks in $0\n" unless @$blocks;
    for my $b (@$blocks) {
        for my $s (keys %{ $b->{sections} }) {
            die "$b->{name}: unknown section '$s'\n" unless $KNOWN_SECTIONS{$s};
        }
    }
    my @only = grep { exists $_->{sections}{ONLY} } @$blocks;
    if (@only) {
        Test::More::diag('ONLY: running ' . scalar(@only) . ' block(s) of ' . scalar(@$blocks));
        $blocks = \@only;
    }

    my %default = %o ? %o : %{ $t->{default_conf} // {} };
    $t->{default_conf} //= {%default};

    for my $b (@$blocks) {
        my $s = $b->{sections};
        if (exists $s->{SKIP}) {
            Test::More::note("skip $b->{name}");
            SKIP: { Test::More::skip("$b->{name}: SKIP", 1) }
            next;
        }
        my %conf = %default;
        $conf{$_} = $s->{$_} for grep { exists $s->{$_} } @CONF_SECTIONS;

        if (exists $s->{must_die}) {
            _run_must_die($t, $b, \%conf);
            next;
        }
        my $want = $JSON->encode(\%conf);
        if (!$t->{running} || $want ne $JSON->encode($t->{started_conf} // {})) {
            my ($ok, $err) = $t->try_start(%conf);
            if (!$ok) {
                Test::More::ok(0, "$b->{name}: nginx started") or Test::More::diag($err);
                next;
            }
        }
        _run_block($t, $b);
    }
    $t->done unless $no_done;
}

sub _run_must_die {
    my ($t, $b, $conf) = @_;
    my $s = $b->{sections};
    my ($ok, $err) = $t->try_start(%$conf);
    Test::More::ok(!$ok, "$b->{name}: nginx refused to start");
    if ($ok) {
        $t->stop;
    } elsif (exists $s->{error_log}) {
        for my $want (_lines($t->_subst_placeholders($s->{error_log}))) {
            Test::More::ok(_log_has($err, $want), "$b->{name}: error_log $want")
                or Test::More::diag($err);
        }
    }
    # The expected [emerg] lines must not fail the file's final log check.
    my $n = ++$t->{must_die_n};
    for my $f (qw(error.log nginx.stderr)) {
        rename "$t->{dir}/$f", "$t->{dir}/$f.must_die.$n" if -f "$t->{dir}/$f";
    }
}

sub _lines {
    my ($v) = @_;
    return grep { /\S/ } map { s/^\s+|\s+$//gr } split /\n/, $v // '';
}

sub _log_has {
    my ($log, $want) = @_;
    return $want =~ /^~\s*(.*)$/ ? $log =~ /$1/m : index($log, $want) >= 0;
}

sub _run_block {
    my ($t, $b) = @_;
    my $name = $b->{name};
    my %s = %{ $b->{sections} };
    my $vars = { %{ $t->{vars} }, rand => $t->{rand} };

    my @checks = grep { exists $s{$_} } qw(error_code response_headers response_body
        response_body_like response_json response_json_like error_log no_error_log);
    if (!@checks) {
        Test::More::ok(0, "$name: the block checks nothing");
        return;
    }
    if (!exists $s{request} && !exists $s{raw_request}) {
        Test::More::ok(0, "$name: no request section");
        return;
    }

    # Expand {{vars}} and %%PLACEHOLDERS%% everywhere except config.
    my %x;
    my $exp_err;
    for my $k (keys %s) {
        next if grep { $_ eq $k } @CONF_SECTIONS;
        $x{$k} = eval { expand_vars($t->_subst_placeholders($s{$k}), $vars) };
        if ($@) { $exp_err = "$k: $@"; last }
    }
    if ($exp_err) {
        Test::More::ok(0, "$name: variables") or Test::More::diag($exp_err);
        return;
    }

    my ($method, $path, $body, %headers, $token, $no_ct);
    if (exists $x{request}) {
        my ($first, $rest) = split /\n/, $x{request}, 2;
        ($method, $path) = ($first // '') =~ /^\s*([A-Z]+)\s+(\S+)/
            or do { Test::More::ok(0, "$name: bad request line '$first'"); return };
        $body = $rest if defined $rest && $rest ne '';
    }
    for my $l (_lines($x{more_headers})) {
        if ($l =~ /^!\s*content-type$/i) { $no_ct = 1; next }
        my ($k, $v) = $l =~ /^([^:]+):\s?(.*)$/ or next;
        $headers{$k} = $v;
    }
    if (defined $body && !$no_ct && $body =~ /^\s*[\[{]/
            && !grep { lc eq 'content-type' } keys %headers) {
        $headers{'Content-Type'} = 'application/json';
    }
    if (exists $x{token}) {
        my $n = $x{token} =~ s/^\s+|\s+$//gr;
        if (!exists $t->{vars}{$n}) {
            Test::More::ok(0, "$name: token '$n' was never captured");
            return;
        }
        $token = $t->{vars}{$n};
    }
    if (exists $x{jwt}) {
        my $claims = eval { $JSON->decode($x{jwt}) };
        if (!$claims) {
            Test::More::ok(0, "$name: jwt section is not JSON") or Test::More::diag($@);
            return;
        }
        $token = $t->jwt($claims);
    }

    my $repeat = $x{repeat} // $ENV{TASKMGR_TEST_REPEAT} // 1;
    my $suffix = $repeat > 1 ? " (x$repeat)" : '';
    my (%fail, $last);

    for my $i (1 .. $repeat) {
        my $off = $t->error_log_size;
        my $r = exists $x{raw_request}
            ? $t->raw_request(_raw_bytes($x{raw_request}), timeout => $x{timeout})
            : $t->request($method, $path, headers => \%headers,
                          (defined $body ? (body => $body) : ()),
                          token => $token, timeout => $x{timeout});
        $last = $r;
        Time::HiRes::sleep($x{wait}) if $x{wait};
        my $check = sub {
            my ($sec, $ok, $diag) = @_;
            $fail{$sec} //= "request $i of $repeat: $diag" unless $ok;
        };
        _check_response($t, \%x, $r, $off, $check);
        last if %fail;    # the first failing repetition is reported
    }

    for my $sec (@checks) {
        Test::More::ok(!exists $fail{$sec}, "$name: $sec$suffix")
            or Test::More::diag($fail{$sec});
    }

    if (exists $x{capture}) {
        for my $l (_lines($x{capture})) {
            my ($var, $p) = $l =~ /^([\w.-]+)\s*=\s*(\S+)$/
                or do { Test::More::ok(0, "$name: bad capture line '$l'"); next };
            my ($found, $v);
            if ($p =~ /^header:(.+)$/i) {
                $v = $last->{headers}{lc $1};
                $found = defined $v;
            } else {
                ($found, $v) = json_path($last->{json}, $p);
                $v = $JSON->encode($v) if $found && ref $v && !JSON::PP::is_bool($v);
            }
            if ($found && defined $v) {
                $t->{vars}{$var} = "$v";
            } else {
                Test::More::ok(0, "$name: capture $var = $p")
                    or Test::More::diag("not found in: $last->{body}");
            }
        }
    }
}

sub _raw_bytes {
    my ($text) = @_;
    my $bytes = $text =~ s/\r?\n/\r\n/gr;
    $bytes .= "\r\n\r\n" unless $bytes =~ /\r\n\r\n/;
    return $bytes;
}

sub _check_response {
    my ($t, $x, $r, $off, $check) = @_;

    if (exists $x->{error_code}) {
        my $want = $x->{error_code} =~ s/^\s+|\s+$//gr;
        $check->('error_code', $r->{status} eq $want,
                 "status $r->{status}, expected $want; body: $r->{body}");
    }
    if (exists $x->{response_headers}) {
        my @bad;
        for my $l (_lines($x->{response_headers})) {
            if ($l =~ /^!\s*(\S+)$/) {
                push @bad, "$1 present: " . $r->{headers}{lc $1}
                    if exists $r->{headers}{lc $1};
            } elsif ($l =~ /^([^:]+):\s*~\s?(.*)$/) {
                my ($k, $re) = ($1, $2);
                my $v = $r->{headers}{lc $k};
                push @bad, "$k: " . ($v // '(absent)') . " !~ /$re/"
                    unless defined $v && $v =~ /$re/;
            } elsif ($l =~ /^([^:]+):\s?(.*)$/) {
                my ($k, $want) = ($1, $2);
                my $v = $r->{headers}{lc $k};
                push @bad, "$k: " . ($v // '(absent)') . ", expected $want"
                    unless defined $v && $v eq $want;
            } else {
                push @bad, "bad response_headers line '$l'";
            }
        }
        $check->('response_headers', !@bad, join '; ', @bad);
    }
    if (exists $x->{response_body}) {
        $check->('response_body', $r->{body} eq $x->{response_body},
                 "body: $r->{body}");
    }
    if (exists $x->{response_body_like}) {
        my $re = $x->{response_body_like};
        $check->('response_body_like', scalar($r->{body} =~ /$re/s),
                 "body: $r->{body}\ndoes not match /$re/");
    }
    for my $sec (qw(response_json response_json_like)) {
        next unless exists $x->{$sec};
        my $exp = eval { $JSON->decode($x->{$sec}) };
        if ($@) {
            $check->($sec, 0, "expected value is not JSON: $@");
            next;
        }
        if (!defined $r->{json} && $r->{body} !~ /^\s*null\s*$/) {
            $check->($sec, 0, "response is not JSON: $r->{body}");
            next;
        }
        my ($ok, $msg) = json_match($r->{json}, $exp, like => $sec eq 'response_json_like');
        $check->($sec, $ok, "$msg\nbody: $r->{body}");
    }
    if (exists $x->{error_log}) {
        my @want = _lines($x->{error_log});
        my $deadline = Time::HiRes::time() + 3;
        my @missing;
        while (1) {
            my $log = $t->error_log_since($off);
            @missing = grep { !_log_has($log, $_) } @want;
            last if !@missing || Time::HiRes::time() > $deadline;
            Time::HiRes::sleep(0.05);
        }
        $check->('error_log', !@missing, 'missing in error.log: ' . join(' | ', @missing));
    }
    if (exists $x->{no_error_log}) {
        Time::HiRes::sleep(0.1);
        my $log = $t->error_log_since($off);
        my @found = grep { _log_has($log, $_) } _lines($x->{no_error_log});
        my @ctx = map { my $w = $_; grep { _log_has($_, $w) } split /\n/, $log } @found;
        $check->('no_error_log', !@found, "in error.log: @ctx[0 .. ($#ctx > 4 ? 4 : $#ctx)]");
    }
}

###########################################################################
# Utilities

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, Proto => 'tcp')
        or die "free_port: $!\n";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub _port_open {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return 0 unless $s;
    close $s;
    return 1;
}

sub _slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return '';
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub _slurp_from {
    my ($f, $off) = @_;
    open my $fh, '<:raw', $f or return '';
    seek $fh, $off, 0 if $off && $off <= (-s $f // 0);
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub _spew {
    my ($f, $content) = @_;
    open my $fh, '>:raw', $f or die "$f: $!\n";
    print {$fh} $content;
    close $fh or die "$f: $!\n";
}

###########################################################################

package Taskmgr::Test::PsqlSession;

use Time::HiRes ();

sub send {
    my ($self, $sql) = @_;
    $sql .= "\n" unless $sql =~ /\n\z/;
    print { $self->{in} } $sql;
    return $self;
}

sub output {
    my ($self) = @_;
    open my $fh, '<', $self->{out} or return '';
    local $/;
    return <$fh> // '';
}

# wait_for(qr/locked/, $seconds): true once the session's output matches.
sub wait_for {
    my ($self, $re, $secs) = @_;
    my $deadline = Time::HiRes::time() + ($secs // 10);
    while (Time::HiRes::time() < $deadline) {
        return 1 if $self->output =~ $re;
        Time::HiRes::sleep(0.02);
    }
    return 0;
}

sub close {
    my ($self) = @_;
    local $?;    # never clobber the exit status of the test file
    return unless $self->{in};
    close $self->{in};    # psql sees EOF, ends (an open transaction rolls back)
    delete $self->{in};
    return $self->output;
}

sub DESTROY { $_[0]->close }

1;
