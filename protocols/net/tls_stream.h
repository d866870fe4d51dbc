// TlsStream: a TLS server stream over `NextLayer` (a TCP socket, or Beast's
// basic_stream when the front wants its timeouts), for Asio's and Beast's
// algorithms: async_handshake, async_read_some, async_write_some. The TLS
// session is a tls::TlsPipe; this class moves its bytes.
//
// Why not Asio's ssl::stream: it keeps four 17 KiB buffers per connection
// whatever the traffic (its own two and a BIO pair's two), ~78 KiB for an
// idle connection, five times memcached -Z's. Here an idle connection holds
// the pipe's 4 KiB input buffer and OpenSSL's session; reads stay
// speculative (the next layer's async_read_some, tried before epoll).
//
// Every operation sends what OpenSSL wrote before it completes (handshake
// records, an alert, a session ticket, a reply's records), so nothing is
// left unsent between operations. One operation at a time: the fronts read,
// then write, never both at once.
//
// Errors: the next layer's as they are (eof when the peer closed, with or
// without close_notify; Beast's timeout); a TLS failure is
// errc::protocol_error, and pipe().failure() says what OpenSSL said.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "katsubushi/tls/tls_pipe.h"

namespace katsubushi::net {

template <typename NextLayer>
class TlsStream {
 public:
  using executor_type = typename NextLayer::executor_type;
  using next_layer_type = NextLayer;

  TlsStream(NextLayer next, std::unique_ptr<tls::TlsPipe> pipe) : next_(std::move(next)), pipe_(std::move(pipe)) {}

  executor_type get_executor() { return next_.get_executor(); }
  NextLayer& next_layer() { return next_; }
  const tls::TlsPipe& pipe() const { return *pipe_; }

  // handler(error_code)
  template <typename Handler>
  void async_handshake(Handler&& handler) {
    Start([](tls::TlsPipe& pipe, size_t*) { return pipe.Handshake(); },
          [h = std::forward<Handler>(handler)](boost::system::error_code ec, size_t) mutable { h(ec); });
  }

  // handler(error_code, size_t): plaintext into the first buffer of `buffers`.
  template <typename MutableBuffers, typename Handler>
  void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    const boost::asio::mutable_buffer b = *boost::asio::buffer_sequence_begin(buffers);
    const std::span<char> out(static_cast<char*>(b.data()), b.size());
    Start(
        [out](tls::TlsPipe& pipe, size_t* n) {
          if (out.empty()) return tls::TlsPipe::Status::kDone;  // Asio's rule for an empty read
          return pipe.Read(out, n);
        },
        std::forward<Handler>(handler));
  }

  // handler(error_code, size_t): the first buffer of `buffers`, as records.
  template <typename ConstBuffers, typename Handler>
  void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    const boost::asio::const_buffer b = *boost::asio::buffer_sequence_begin(buffers);
    const std::span<const char> in(static_cast<const char*>(b.data()), b.size());
    bool written = false;
    Start(
        [in, written](tls::TlsPipe& pipe, size_t* n) mutable {
          if (written) return tls::TlsPipe::Status::kDone;  // input arrived after the records went
          written = true;
          return pipe.Write(in, n);
        },
        std::forward<Handler>(handler));
  }

 private:
  // One operation: run `step` on the pipe, send what it wrote, read more
  // ciphertext while it wants input, and complete with what it made of it.
  template <typename Step, typename Handler>
  struct Operation {
    TlsStream* stream;
    Step step;
    Handler handler;
    size_t n = 0;

    void Run(bool continuation) {
      TlsStream* const s = stream;
      const tls::TlsPipe::Status status = step(*s->pipe_, &n);
      const std::string& output = s->pipe_->output();
      if (output.empty()) return After(status, continuation);
      boost::asio::async_write(s->next_, boost::asio::buffer(output),
                               [op = std::move(*this), status](boost::system::error_code ec, size_t sent) mutable {
                                 op.stream->pipe_->ConsumeOutput(sent);
                                 if (ec) return op.Complete(ec, true);
                                 op.After(status, true);
                               });
    }

    void After(tls::TlsPipe::Status status, bool continuation) {
      using Status = tls::TlsPipe::Status;
      switch (status) {
        case Status::kDone:
          return Complete({}, continuation);
        case Status::kClosed:
          return Complete(boost::asio::error::eof, continuation);
        case Status::kFailed:
          return Complete(make_error_code(boost::system::errc::protocol_error), continuation);
        case Status::kWantInput:
          break;
      }
      TlsStream* const s = stream;
      const std::span<char> room = s->pipe_->InputRoom();
      s->next_.async_read_some(boost::asio::buffer(room.data(), room.size()),
                                    [op = std::move(*this)](boost::system::error_code ec, size_t got) mutable {
                                      if (ec) return op.Complete(ec, true);
                                      op.stream->pipe_->CommitInput(got);
                                      op.Run(true);
                                    });
    }

    // A completion from within another completion may call the handler at
    // once; one from the initiating call is posted, as Asio requires.
    void Complete(boost::system::error_code ec, bool continuation) {
      if (continuation) return handler(ec, n);
      boost::asio::post(stream->get_executor(),
                        [h = std::move(handler), ec, done = n]() mutable { h(ec, done); });
    }
  };

  template <typename Step, typename Handler>
  void Start(Step step, Handler&& handler) {
    Operation<Step, std::decay_t<Handler>>{this, std::move(step), std::forward<Handler>(handler)}.Run(false);
  }

  NextLayer next_;
  std::unique_ptr<tls::TlsPipe> pipe_;
};

}  // namespace katsubushi::net
