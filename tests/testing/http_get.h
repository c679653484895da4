// HttpGet: a plain HTTP/1.1 GET on loopback for the metrics tests (no client library: the
// point is to see what a Prometheus scraper sees). Returns the status line's code and the
// body. Header-only.
#ifndef RESBM_TESTS_TESTING_HTTP_GET_H_
#define RESBM_TESTS_TESTING_HTTP_GET_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <utility>

namespace resbm::testing {

// (status code, body); code 0 when nothing answered.
inline std::pair<int, std::string> HttpGet(int port, const std::string& path) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return {0, ""};
  }
  timeval timeout{10, 0};  // A server that never answers fails the test instead of hanging it.
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  (void)!::send(fd, request.data(), request.size(), 0);
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) response.append(buffer, n);
  ::close(fd);
  const size_t space = response.find(' ');
  const size_t body = response.find("\r\n\r\n");
  if (space == std::string::npos || body == std::string::npos) return {0, response};
  return {std::atoi(response.c_str() + space + 1), response.substr(body + 4)};
}

// The value of the sample `name{labels}` (labels exactly as exposed, "" for none) in
// Prometheus text, or -1 when absent.
inline double SampleValue(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

}  // namespace resbm::testing

#endif  // RESBM_TESTS_TESTING_HTTP_GET_H_
